"""Names of generative tools, matched in software fields (never in free text).

Only fields that name the program that wrote the file are matched (EXIF ``Software``,
``xmp:CreatorTool``, ID3 ``TSSE``/``TENC``, MP4 ``©too``, Vorbis ``ENCODER``, a C2PA claim
generator): a caption or comment that mentions "Midjourney" says nothing about the file. A
false claim of AI generation harms no one, so a name here is enough to declare AI; a name
missing here only loses a hint, the models still judge the file.
"""

from __future__ import annotations

import re

_GENERATORS: tuple[tuple[str, str], ...] = (
    # images
    (r"stable[ -]?diffusion", "Stable Diffusion"),
    (r"automatic1111|sd[ -]webui|stable-diffusion-webui", "Stable Diffusion web UI"),
    (r"comfy ?ui", "ComfyUI"),
    (r"invoke ?ai", "InvokeAI"),
    (r"fooocus", "Fooocus"),
    (r"novel ?ai", "NovelAI"),
    (r"midjourney", "Midjourney"),
    (r"dall[-·‧ ]?e", "DALL·E"),
    (r"chatgpt|gpt-4o|gpt-image", "OpenAI image generation"),
    (r"firefly", "Adobe Firefly"),
    (r"imagen|gemini|nano banana", "Google Imagen / Gemini"),
    (r"ideogram", "Ideogram"),
    (r"leonardo\.ai", "Leonardo.Ai"),
    (r"draw things", "Draw Things"),
    (r"bing image creator|microsoft designer", "Microsoft Designer"),
    (r"runway ?ml|runway gen-\d", "Runway"),
    (r"sora", "Sora"),
    # speech and music
    (r"eleven ?labs", "ElevenLabs"),
    (r"suno", "Suno"),
    (r"udio", "Udio"),
    (r"coqui|xtts", "Coqui TTS"),
    (r"tortoise[- ]tts", "Tortoise TTS"),
    (r"piper[- ]tts", "Piper TTS"),
    (r"espeak(?:-ng)?", "eSpeak"),
    (r"festival", "Festival speech synthesis"),
    (r"flite", "Flite"),
    (r"amazon polly", "Amazon Polly"),
    (r"gtts|google text-to-speech", "Google Text-to-Speech"),
    (r"text[- ]to[- ]speech|tts", "a text-to-speech engine"),
)

_PATTERNS = tuple(
    (re.compile(rf"(?<![a-z0-9]){pattern}(?![a-z0-9])", re.IGNORECASE), name)
    for pattern, name in _GENERATORS
)


def known_generator(software: str | None) -> str | None:
    """The generative tool ``software`` names, or ``None`` (a camera, an editor, FFmpeg...)."""
    if not software:
        return None
    text = software[:1000]
    for pattern, name in _PATTERNS:
        if pattern.search(text):
            return name
    return None
