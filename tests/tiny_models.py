"""Tiny random checkpoints in the standard Hugging Face folder layouts, built offline by the
tests (nothing can be downloaded): a character-level CLIP tokenizer, a Stable Diffusion
pipeline folder, and a CLIPSeg model with its processor."""

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


def build_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """A StableDiffusionPipeline folder: 2-block UNet, 3-block VAE (latent scale 4), a
    2-layer CLIP text encoder, Euler scheduler."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
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
        "vae": AutoencoderKL(
            block_out_channels=(8, 16, 16),
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3,
            norm_num_groups=8,
            layers_per_block=1,
        ),  # fmt: skip
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
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
             "safety_checker": [None, None], "feature_extractor": [None, None],
             "image_encoder": [None, None], "requires_safety_checker": False}  # fmt: skip
    for name, part in parts.items():
        part.save_pretrained(folder / name)
        lib = "transformers" if name in ("tokenizer", "text_encoder") else "diffusers"
        index[name] = [lib, type(part).__name__]
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


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
