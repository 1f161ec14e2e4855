"""GLSL programs loaded by name from the repository's ``shaders/`` folder.

Shader source never lives in Python strings (DESIGN.md section 1): ``load_program("splat")``
compiles ``shaders/splat.vert`` and ``shaders/splat.frag`` (``shaders/NAME.comp`` alone for
a compute program) and links them. Failures raise :class:`ShaderError` naming the file and
quoting the driver's info log. A current OpenGL context is required.
"""

from __future__ import annotations

from pathlib import Path

from OpenGL import GL

SHADER_DIR = Path(__file__).resolve().parents[2] / "shaders"

_STAGES = {
    ".vert": GL.GL_VERTEX_SHADER,
    ".frag": GL.GL_FRAGMENT_SHADER,
    ".comp": GL.GL_COMPUTE_SHADER,
    ".geom": GL.GL_GEOMETRY_SHADER,
}


class ShaderError(RuntimeError):
    """A GLSL file is missing, does not compile, or a program does not link."""


def _log(text: bytes | str | None) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text.strip()


def compile_shader(path: Path) -> int:
    """Compile one GLSL file; the stage comes from its suffix. Returns the shader object."""
    path = Path(path)
    stage = _STAGES.get(path.suffix)
    if stage is None:
        raise ShaderError(f"{path.name}: unknown shader stage (use one of {sorted(_STAGES)})")
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ShaderError(f"cannot read shader {path}: {e}") from e
    shader = GL.glCreateShader(stage)
    GL.glShaderSource(shader, source)
    GL.glCompileShader(shader)
    if not GL.glGetShaderiv(shader, GL.GL_COMPILE_STATUS):
        log = _log(GL.glGetShaderInfoLog(shader))
        GL.glDeleteShader(shader)
        raise ShaderError(f"{path.name} failed to compile:\n{log}")
    return shader


def link_program(paths: list[Path], label: str = "") -> int:
    """Compile and link the given files into a program object."""
    shaders = [compile_shader(p) for p in paths]
    program = GL.glCreateProgram()
    for s in shaders:
        GL.glAttachShader(program, s)
    GL.glLinkProgram(program)
    for s in shaders:
        GL.glDetachShader(program, s)
        GL.glDeleteShader(s)
    if not GL.glGetProgramiv(program, GL.GL_LINK_STATUS):
        log = _log(GL.glGetProgramInfoLog(program))
        GL.glDeleteProgram(program)
        names = ", ".join(Path(p).name for p in paths)
        raise ShaderError(f"program {label or names} failed to link ({names}):\n{log}")
    return program


def shader_paths(name: str, shader_dir: Path | None = None) -> list[Path]:
    """The files of program ``name``: NAME.vert + NAME.frag, or NAME.comp."""
    d = Path(shader_dir) if shader_dir is not None else SHADER_DIR
    comp = d / f"{name}.comp"
    vert, frag = d / f"{name}.vert", d / f"{name}.frag"
    if vert.exists() or frag.exists():
        missing = [p.name for p in (vert, frag) if not p.exists()]
        if missing:
            raise ShaderError(f"program {name!r}: missing {', '.join(missing)} in {d}")
        return [vert, frag]
    if comp.exists():
        return [comp]
    raise ShaderError(f"no shader program {name!r} in {d} (expected {name}.vert + {name}.frag)")


def load_program(name: str, shader_dir: Path | None = None) -> int:
    """Compile and link program ``name`` from ``shaders/`` (or ``shader_dir``)."""
    return link_program(shader_paths(name, shader_dir), label=name)
