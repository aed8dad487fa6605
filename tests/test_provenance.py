"""Provenance: what a file declares about itself becomes evidence with a stated weight.

Every fixture is built here: PNG text chunks as Stable Diffusion web UI and ComfyUI write
them, XMP with an IPTC digital source type, a C2PA manifest signed with a certificate made
in the test, an MP3 with a speech generator's ID3 tag, and damaged or oversized metadata.
"""

from __future__ import annotations

import datetime
import io
import json
import struct
import sys
import zlib

import av
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from deepfakescan.cli import EXIT_ERROR, main
from deepfakescan.config import Settings
from deepfakescan.provenance import provenance_judgement, read_provenance
from deepfakescan.provenance.c2pa_store import UNAVAILABLE

from .fixtures import make_video

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
A1111 = (
    "a portrait of an astronaut, oil painting\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 512x512"
)
COMFY_PROMPT = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl.safetensors"}},
}
COMFY_WORKFLOW = {"last_node_id": 4, "nodes": [{"id": 3, "type": "KSampler"}], "links": []}


# ---- fixtures built in code -------------------------------------------------------------


def _image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))


def png_with(texts: dict[str, str] | None = None, itxt: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (texts or {}).items():
        info.add_text(key, value)
    for key, value in (itxt or {}).items():
        info.add_itxt(key, value)
    buf = io.BytesIO()
    _image().save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def insert_after_ihdr(png: bytes, chunk: bytes) -> bytes:
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


def jpeg(**save) -> bytes:
    buf = io.BytesIO()
    _image().save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


def with_app1(data: bytes, payload: bytes) -> bytes:
    """A JPEG with one more APP1 segment right after SOI (where XMP lives)."""
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def xmp_packet(attributes: str = "", elements: str = "") -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about=""'
        ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        ' xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
        f' xmlns:xmp="http://ns.adobe.com/xap/1.0/" {attributes}>{elements}'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def jpeg_with_xmp(packet: bytes) -> bytes:
    return with_app1(jpeg(), b"http://ns.adobe.com/xap/1.0/\x00" + packet)


def _synchsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def id3v23(frames: dict[str, str]) -> bytes:
    """An ID3v2.3 tag of Latin-1 text frames, as a TTS tool writes in front of its MP3."""
    body = b"".join(
        fid.encode() + struct.pack(">IH", len(text) + 1, 0) + b"\x00" + text.encode("latin-1")
        for fid, text in frames.items()
    )
    return b"ID3\x03\x00\x00" + _synchsafe(len(body)) + body


def mp3_frames() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3", options={"id3v2_version": "0"}) as out:
        stream = out.add_stream("libmp3lame", rate=22050)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 4096), np.float32), format="fltp", layout="mono"
        )
        frame.rate = 22050
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buf.getvalue()


# ---- C2PA: a certificate chain made here, a manifest signed with the library ---------------


def certificate_chain() -> tuple[bytes, bytes, bytes]:
    """An ES256 CA and end-entity pair with the extensions the C2PA library requires
    (v3, the CA marked as such, the signer's digitalSignature usage and an email-protection
    EKU, key identifiers): the library refuses a self-signed end-entity certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Provenance Test Lab"),
            ]
        )

    def usage(**on) -> x509.KeyUsage:
        names = [
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ]
        flags = dict.fromkeys(names, False)
        return x509.KeyUsage(**{**flags, **on})

    now = datetime.datetime.now(datetime.UTC)

    def builder(subject, issuer, key) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        builder(name("Provenance Test Root"), name("Provenance Test Root"), ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        builder(name("Test Generator"), ca.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return leaf.public_bytes(pem) + ca.public_bytes(pem), key_pem, ca.public_bytes(pem)
    # (signer chain PEM, signer key PEM, root PEM for a trust list)


def c2pa_signed_jpeg(
    image: bytes, source_type: str, chain: bytes, key: bytes, generator: str = "Test Diffusion"
) -> bytes:
    """``image`` with a C2PA manifest whose ``c2pa.created`` action has ``source_type``."""
    import c2pa

    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    manifest = {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": "made-in-test.jpg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": source_type}]},
            }
        ],
    }
    out = io.BytesIO()
    with c2pa.Builder.from_json(manifest) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO(image), out)
    return out.getvalue()


@pytest.fixture(scope="module")
def c2pa_signing():
    pytest.importorskip("c2pa", reason="the [provenance] extra (c2pa-python) is needed")
    chain, key, root = certificate_chain()

    def sign(source_type: str, generator: str = "Test Diffusion") -> bytes:
        return c2pa_signed_jpeg(jpeg(), source_type, chain, key, generator)

    return sign, root


def settings_trusting(tmp_path, root_pem: bytes | None = None) -> Settings:
    if root_pem is None:
        return Settings()
    bundle = tmp_path / "trust.pem"
    bundle.write_bytes(root_pem)
    return Settings(c2pa_trust=bundle)


def only(provenance, source: str):
    found = [i for i in provenance.items if i.source == source]
    assert len(found) == 1, provenance
    return found[0]


# ---- generator records ------------------------------------------------------------------


def test_stable_diffusion_webui_parameters_in_a_png_declare_ai():
    provenance = read_provenance(png_with({"parameters": A1111}))
    item = only(provenance, "png-text")
    assert (item.field, item.generator, item.declares_ai) == (
        "parameters",
        "Stable Diffusion web UI",
        True,
    )
    hint, reasons = provenance_judgement(provenance)
    assert hint == "fake"
    assert reasons == ("The PNG carries Stable Diffusion web UI generation parameters.",)


def test_a_png_parameters_chunk_without_generation_settings_is_only_recorded():
    provenance = read_provenance(png_with({"parameters": "exposure +0.3, crop 4:3"}))
    assert not only(provenance, "png-text").declares_ai
    assert provenance_judgement(provenance).hint is None


def test_comfyui_prompt_and_workflow_chunks_declare_ai():
    provenance = read_provenance(
        png_with(
            {"prompt": json.dumps(COMFY_PROMPT)}, itxt={"workflow": json.dumps(COMFY_WORKFLOW)}
        )
    )
    assert {(i.field, i.generator) for i in provenance.items} == {
        ("prompt", "ComfyUI"),
        ("workflow", "ComfyUI"),
    }
    hint, reasons = provenance_judgement(provenance)
    assert hint == "fake"
    assert "The PNG carries a ComfyUI prompt graph." in reasons
    assert "The PNG carries a ComfyUI workflow." in reasons


def test_a_prompt_chunk_that_is_not_a_comfyui_graph_declares_nothing():
    provenance = read_provenance(png_with({"prompt": "a cat on a sofa"}))
    assert not provenance.declares_ai


def test_long_values_are_cut_in_the_record():
    big = {str(i): {"class_type": "KSampler", "inputs": {"seed": i}} for i in range(2000)}
    item = only(read_provenance(png_with({"prompt": json.dumps(big)})), "png-text")
    assert item.declares_ai
    assert len(item.value) < 400 and "more characters" in item.value


def test_xmp_digital_source_type_trained_algorithmic_media_declares_ai():
    data = jpeg_with_xmp(
        xmp_packet(
            f'Iptc4xmpExt:DigitalSourceType="{TRAINED}" photoshop:Credit="Made with AI"',
            "<xmp:CreatorTool>Image Studio 3</xmp:CreatorTool>",
        )
    )
    provenance = read_provenance(data)
    iptc = only(provenance, "iptc")
    assert (iptc.digital_source_type, iptc.declares_ai, iptc.verified) == (
        "trainedAlgorithmicMedia",
        True,
        False,
    )
    assert {(i.field, i.value) for i in provenance.items if i.source == "xmp"} == {
        ("photoshop:Credit", "Made with AI"),
        ("xmp:CreatorTool", "Image Studio 3"),
    }
    hint, reasons = provenance_judgement(provenance)
    assert hint == "fake"
    assert reasons == (
        "The file's XMP metadata declares it was created by a generative model"
        " (IPTC digital source type trainedAlgorithmicMedia).",
    )


def test_an_unsigned_capture_claim_gives_no_hint():
    data = jpeg_with_xmp(xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{CAPTURE}"'))
    provenance = read_provenance(data)
    assert only(provenance, "iptc").camera_capture
    assert provenance_judgement(provenance) == (None, ())


def test_xmp_in_a_webp_is_read():
    buf = io.BytesIO()
    _image().save(buf, "WEBP", xmp=xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{TRAINED}"'))
    assert only(read_provenance(buf.getvalue()), "iptc").declares_ai


def test_exif_software_and_camera_are_recorded():
    exif = Image.Exif()
    exif[0x0131] = "NovelAI"
    exif[0x010F] = "Canon"
    provenance = read_provenance(jpeg(exif=exif))
    fields = {i.field: i for i in provenance.items}
    assert fields["Software"].generator == "NovelAI" and fields["Software"].declares_ai
    assert fields["Make"].camera_capture and not fields["Make"].declares_ai
    assert provenance_judgement(provenance).hint == "fake"


def test_stable_diffusion_parameters_in_exif_user_comment_declare_ai():
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + A1111.encode("utf-16-be")
    item = only(read_provenance(jpeg(exif=exif)), "exif")
    assert (item.field, item.generator) == ("UserComment", "Stable Diffusion web UI")


def test_a_tiff_keeps_software_and_xmp_in_its_first_ifd():
    buf = io.BytesIO()
    packet = xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{TRAINED}"')
    _image().save(buf, "TIFF", tiffinfo={0x0131: "Stable Diffusion XL", 0x02BC: packet})
    provenance = read_provenance(buf.getvalue())
    assert {(i.source, i.field) for i in provenance.items if i.declares_ai} == {
        ("exif", "Software"),
        ("iptc", "Iptc4xmpExt:DigitalSourceType"),
    }
    reasons = provenance_judgement(provenance).reasons
    assert "IPTC digital source type" in reasons[0]  # the standard declaration comes first
    assert reasons[1] == "The file's EXIF field Software names Stable Diffusion, an AI generator."


def test_an_mp4_encoder_tag_is_recorded_as_its_own_field():
    provenance = read_provenance(make_video(seconds=0.5))
    item = only(provenance, "mp4")
    assert item.field == "©too" and item.value.startswith("Lavf") and not item.declares_ai


def test_a_speech_generators_id3_tag_declares_ai():
    data = id3v23({"TSSE": "ElevenLabs Multilingual v2", "TENC": "studio"}) + mp3_frames()
    provenance = read_provenance(data)
    tags = {i.field: i for i in provenance.items}
    assert tags["TSSE"].source == "id3"
    assert tags["TSSE"].generator == "ElevenLabs" and tags["TSSE"].declares_ai
    assert not tags["TENC"].declares_ai
    hint, reasons = provenance_judgement(provenance)
    assert hint == "fake"
    assert reasons == ("The file's ID3 tag field TSSE names ElevenLabs, an AI generator.",)


def test_an_ffmpeg_encoder_tag_is_recorded_but_declares_nothing():
    provenance = read_provenance(id3v23({"TSSE": "Lavf62"}) + mp3_frames())
    assert only(provenance, "id3").value == "Lavf62"
    assert provenance_judgement(provenance).hint is None


def test_a_file_without_records_gives_no_hint_and_no_warning():
    provenance = read_provenance(jpeg())
    assert provenance.items == () and provenance.warnings == ()
    assert provenance_judgement(provenance) == (None, ())


# ---- C2PA --------------------------------------------------------------------------------


def test_a_signed_ai_manifest_verifies_but_its_signer_is_untrusted(c2pa_signing, tmp_path):
    sign, _root = c2pa_signing
    provenance = read_provenance(sign(TRAINED), settings=settings_trusting(tmp_path))
    item = only(provenance, "c2pa")
    assert (item.verified, item.validation) == (True, "untrusted")
    assert item.signer == "Test Generator (Provenance Test Lab)"
    assert item.claim_generator == "Test Diffusion 1.0"
    assert item.actions == ("c2pa.created",)
    assert item.digital_source_type == "trainedAlgorithmicMedia" and item.declares_ai
    hint, reasons = provenance_judgement(provenance)
    assert hint == "fake"
    assert reasons[0].startswith(
        "The file's C2PA manifest, signed by “Test Generator (Provenance Test Lab)” (a signer"
        " not on your trust list), declares it was created by a generative model"
    )


def test_a_signer_on_the_configured_trust_list_is_trusted(c2pa_signing, tmp_path):
    sign, root = c2pa_signing
    provenance = read_provenance(sign(TRAINED), settings=settings_trusting(tmp_path, root))
    assert only(provenance, "c2pa").validation == "trusted"


def test_one_changed_image_byte_makes_the_manifest_invalid(c2pa_signing, tmp_path):
    sign, root = c2pa_signing
    signed = bytearray(sign(TRAINED))
    signed[-10] ^= 0xFF  # inside the entropy-coded image data, before EOI
    provenance = read_provenance(bytes(signed), settings=settings_trusting(tmp_path, root))
    item = only(provenance, "c2pa")
    assert (item.verified, item.validation) == (False, "invalid")
    assert "assertion.dataHash.mismatch" in item.value
    hint, reasons = provenance_judgement(provenance)
    assert hint == "fake"  # an AI claim, even unverified, is still a claim of AI
    assert "do not verify" in reasons[0] and "signed by" not in reasons[0]


def test_a_capture_manifest_supports_real_only_from_a_trusted_signer(c2pa_signing, tmp_path):
    sign, root = c2pa_signing
    capture = sign(CAPTURE, generator="Test Camera Firmware")
    untrusted = read_provenance(capture, settings=settings_trusting(tmp_path))
    assert only(untrusted, "c2pa").camera_capture
    hint, reasons = provenance_judgement(untrusted)
    assert hint is None and "not counted" in reasons[0]
    trusted = read_provenance(capture, settings=settings_trusting(tmp_path, root))
    hint, reasons = provenance_judgement(trusted)
    assert hint == "real"
    assert "does not override the models" in reasons[0]


def test_a_truncated_manifest_is_a_warning_not_an_error(c2pa_signing):
    sign, _root = c2pa_signing
    signed = sign(TRAINED)
    cut = signed[: signed.find(b"\xff\xeb") + 3000]  # inside the APP11 manifest segments
    provenance = read_provenance(cut)
    assert provenance.items == ()
    assert any(w.startswith("C2PA: the manifest cannot be read") for w in provenance.warnings)


def test_an_unreadable_trust_list_is_a_warning(c2pa_signing, tmp_path):
    sign, _root = c2pa_signing
    settings = Settings(c2pa_trust=tmp_path / "missing.pem")
    provenance = read_provenance(sign(TRAINED), settings=settings)
    assert only(provenance, "c2pa").validation == "untrusted"
    assert any("trust list" in w and "cannot be read" in w for w in provenance.warnings)


def test_without_the_c2pa_library_a_manifest_is_reported_unchecked(monkeypatch):
    monkeypatch.setitem(sys.modules, "c2pa", None)  # `import c2pa` now raises ImportError
    fake_store = b"\xff\xeb" + struct.pack(">H", 12) + b"JP\x02\x11" + b"\x00" * 6
    data = jpeg()
    provenance = read_provenance(data[:2] + fake_store + data[2:])
    assert provenance.warnings == (UNAVAILABLE,)
    assert read_provenance(jpeg()).warnings == ()  # nothing to check: nothing said


# ---- damaged and oversized metadata: warnings, never exceptions ---------------------------


def test_a_ten_megabyte_xmp_packet_is_skipped_with_a_warning():
    packet = xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{TRAINED}"', " " * (10 * 1024 * 1024))
    provenance = read_provenance(png_with(itxt={"XML:com.adobe.xmp": packet.decode()}))
    assert provenance.items == ()
    assert len(provenance.warnings) == 1 and "over the" in provenance.warnings[0]


def test_an_xmp_packet_just_over_one_megabyte_is_not_parsed():
    packet = xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{TRAINED}"', " " * (1024 * 1024))
    provenance = read_provenance(png_with(itxt={"XML:com.adobe.xmp": packet.decode()}))
    assert provenance.items == ()
    assert provenance.warnings == ("XMP: packet of 1.0 MB is over the 1 MB limit; not read",)


_ENTITIES = (
    b'<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
)


@pytest.mark.parametrize(
    "packet",
    [
        # a DTD before the packet: only <x:xmpmeta> is parsed, so the entity is undefined
        b"<!DOCTYPE x:xmpmeta ["
        + _ENTITIES
        + b"]>"
        + xmp_packet(elements="<photoshop:Credit>&c;</photoshop:Credit>"),
        # no <x:xmpmeta> at all: the whole packet is parsed, and its DTD is refused
        b'<?xml version="1.0"?><!DOCTYPE lolz [' + _ENTITIES + b"]><lolz>&c;</lolz>",
    ],
    ids=["dtd-before-xmpmeta", "dtd-alone"],
)
def test_an_xml_entity_bomb_in_xmp_is_refused(packet):
    provenance = read_provenance(jpeg_with_xmp(packet))
    assert provenance.items == ()
    assert provenance.warnings and provenance.warnings[0].startswith("XMP: unreadable packet")


def test_a_compressed_text_bomb_is_not_inflated():
    bomb = b"parameters\x00\x00" + zlib.compress(b"A" * (16 * 1024 * 1024))
    data = insert_after_ihdr(png_with(), png_chunk(b"zTXt", bomb))
    provenance = read_provenance(data)
    assert provenance.items == ()
    assert "inflates to more than" in provenance.warnings[0]


def test_a_text_chunk_with_a_bad_crc_is_ignored():
    data = insert_after_ihdr(png_with(), png_chunk(b"tEXt", b"parameters\x00" + A1111.encode(), 0))
    provenance = read_provenance(data)
    assert provenance.items == ()
    assert provenance.warnings == ("PNG: tEXt chunk fails its CRC check; ignored",)


def test_a_png_cut_inside_a_text_chunk_keeps_the_records_before_it():
    data = png_with({"Software": "ComfyUI", "parameters": A1111})
    cut = data.find(b"parameters") + 30  # inside the second text chunk
    provenance = read_provenance(data[:cut])
    assert [(i.field, i.generator) for i in provenance.items] == [("Software", "ComfyUI")]
    assert provenance.warnings == ("PNG: the file ends inside a tEXt chunk",)


def test_a_jpeg_segment_with_a_bad_length_stops_the_walk_with_a_warning():
    data = jpeg()
    broken = data[:2] + b"\xff\xe1\x00\x01" + data[2:]
    provenance = read_provenance(broken)
    assert provenance.warnings == ("JPEG: segment 0xE1 has a bad length; walk stopped",)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_malformed_exif_gives_no_record_and_no_error():
    garbage = b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff" + b"\x00" * 20  # IFD past the end
    provenance = read_provenance(with_app1(jpeg(), garbage))
    assert provenance.items == ()


# ---- the command line ---------------------------------------------------------------------


def test_cli_prints_the_records_and_the_hint_as_json(tmp_path, capsys):
    path = tmp_path / "comfy.png"
    path.write_bytes(png_with({"prompt": json.dumps(COMFY_PROMPT)}))
    assert main(["provenance", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hint"] == "fake" and out["declares_ai"] is True
    assert out["items"][0]["source"] == "png-text" and out["items"][0]["generator"] == "ComfyUI"
    assert out["reasons"] == ["The PNG carries a ComfyUI prompt graph."]


def test_cli_says_when_a_file_declares_nothing(tmp_path, capsys):
    path = tmp_path / "plain.jpg"
    path.write_bytes(jpeg())
    assert main(["provenance", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hint: none")
    assert "no provenance records found" in out


def test_cli_refuses_a_file_that_is_not_media(tmp_path, capsys):
    path = tmp_path / "notes.jpg"
    path.write_text("not an image at all")
    assert main(["provenance", str(path)]) == EXIT_ERROR
    assert "not a format we can analyse" in capsys.readouterr().err
