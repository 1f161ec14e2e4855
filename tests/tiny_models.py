"""Tiny random checkpoints in the standard Hugging Face folder layouts, built offline by the
tests (nothing can be downloaded): a character-level CLIP tokenizer, a word-level T5-style
tokenizer, Stable Diffusion and Stable Diffusion 3 pipeline folders, and a CLIPSeg model with
its processor."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def clip_tokenizer(folder: Path):
    """A CLIPTokenizer over single bytes (no merges): every character is a token."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
    )


def word_tokenizer(words: list[str]):
    """A fast word-level tokenizer (whitespace split) over ``words``, which must hold
    ``<pad>``, ``</s>`` and ``<unk>``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def save_pipeline(folder: Path, parts: dict, index: dict) -> Path:
    """Each part saved with save_pretrained under ``folder/<name>`` and named in
    ``model_index.json`` (with ``index``'s other entries)."""
    index = {"_diffusers_version": "0.42.1", **index}
    for name, part in parts.items():
        part.save_pretrained(folder / name)
        lib = "diffusers" if type(part).__module__.startswith("diffusers") else "transformers"
        index[name] = [lib, type(part).__name__]
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def _tiny_vae(**factors):
    """A 3-block AutoencoderKL (latent scale 4, 4 channels)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 16, 16),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        norm_num_groups=8,
        layers_per_block=1,
        **factors,
    )


def build_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """A StableDiffusionPipeline folder: 2-block UNet, 3-block VAE (latent scale 4), a
    2-layer CLIP text encoder, Euler scheduler."""
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = clip_tokenizer(folder / "_vocab")
    torch.manual_seed(seed)
    parts = {
        "unet": UNet2DConditionModel(
            block_out_channels=(16, 32),
            layers_per_block=1,
            sample_size=16,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=16,
            attention_head_dim=4,
            norm_num_groups=8,
        ),  # fmt: skip
        "vae": _tiny_vae(),
        "text_encoder": CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=16,
                intermediate_size=24,
                num_hidden_layers=2,
                num_attention_heads=2,
                max_position_embeddings=77,
                bos_token_id=len(tokenizer) - 2,
                eos_token_id=len(tokenizer) - 1,
            )
        ),  # fmt: skip
        "tokenizer": tokenizer,
        "scheduler": EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            timestep_spacing="trailing",
        ),  # fmt: skip
    }
    index = {"_class_name": "StableDiffusionPipeline", "safety_checker": [None, None],
             "feature_extractor": [None, None], "image_encoder": [None, None],
             "requires_safety_checker": False}  # fmt: skip
    return save_pipeline(folder, parts, index)


T5_WORDS = ["<pad>", "</s>", "<unk>", "misty", "alpine", "lake", "at", "dawn", "pine", "forest",
            "blur"]  # fmt: skip


def _clip_with_projection(n_vocab: int, hidden: int, projection: int):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    return CLIPTextModelWithProjection(
        CLIPTextConfig(vocab_size=n_vocab, hidden_size=hidden, intermediate_size=24,
                       num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                       projection_dim=projection, bos_token_id=n_vocab - 2,
                       eos_token_id=n_vocab - 1, hidden_act="gelu")
    )  # fmt: skip


def build_tiny_sd3(folder: Path, t5: bool = True, dynamic_shift: bool = False,
                   seed: int = 0) -> Path:  # fmt: skip
    """A StableDiffusion3Pipeline folder: a 1-layer SD3 transformer (patch 2), a 3-block VAE
    (latent scale 4, with a shift factor), two CLIP text encoders with projection, a 1-layer
    T5 encoder with a word-level tokenizer (``t5``; without it diffusers pads with zeros) and
    the flow-matching scheduler (with dynamic shifting if ``dynamic_shift``)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import T5Config, T5EncoderModel

    tokenizer = clip_tokenizer(folder / "_vocab")
    n = len(tokenizer)
    torch.manual_seed(seed)
    parts = {
        "transformer": SD3Transformer2DModel(
            sample_size=16,
            patch_size=2,
            in_channels=4,
            out_channels=4,
            num_layers=1,
            attention_head_dim=8,
            num_attention_heads=4,
            joint_attention_dim=32,
            caption_projection_dim=32,
            pooled_projection_dim=32,
            pos_embed_max_size=64,
        ),  # fmt: skip
        "vae": _tiny_vae(scaling_factor=1.5305, shift_factor=0.0609),  # SD3's own factors
        "text_encoder": _clip_with_projection(n, 16, 16),
        "text_encoder_2": _clip_with_projection(n, 16, 16),
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer,
        "scheduler": FlowMatchEulerDiscreteScheduler(
            shift=3.0,
            use_dynamic_shifting=dynamic_shift,
            base_image_seq_len=16,
            max_image_seq_len=256,
            base_shift=0.5,
            max_shift=1.15,
        ),  # fmt: skip
    }
    index = {"_class_name": "StableDiffusion3Pipeline", "image_encoder": [None, None],
             "feature_extractor": [None, None]}  # fmt: skip
    if t5:
        parts["text_encoder_3"] = T5EncoderModel(
            T5Config(vocab_size=len(T5_WORDS), d_model=32, d_kv=8, d_ff=37, num_layers=1,
                     num_heads=4, relative_attention_num_buckets=8)
        )  # fmt: skip
        parts["tokenizer_3"] = word_tokenizer(T5_WORDS)
    else:
        index.update(text_encoder_3=[None, None], tokenizer_3=[None, None])
    return save_pipeline(folder, parts, index)


def build_tiny_clipseg(folder: Path, seed: int = 0) -> Path:
    """A CLIPSeg checkpoint (CLIPSegForImageSegmentation) with its CLIPSegProcessor."""
    from transformers import (
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        ViTImageProcessor,
    )

    tok = clip_tokenizer(folder / "_vocab")
    n = len(tok)
    torch.manual_seed(seed)
    cfg = CLIPSegConfig(
        text_config=dict(vocab_size=n, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=n - 2,
                         eos_token_id=n - 1),
        vision_config=dict(hidden_size=16, intermediate_size=24, num_hidden_layers=3,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=16, reduce_dim=8, extract_layers=[0, 1], decoder_num_attention_heads=2,
        decoder_intermediate_size=16,
    )  # fmt: skip
    CLIPSegForImageSegmentation(cfg).save_pretrained(folder)
    image = ViTImageProcessor(size={"height": 32, "width": 32})
    CLIPSegProcessor(image_processor=image, tokenizer=tok).save_pretrained(folder)
    return folder
