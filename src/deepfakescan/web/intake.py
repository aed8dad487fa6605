"""Read a multipart upload off the connection straight into its final file.

Werkzeug's form parser (``request.files``) spools every file part to a temporary file first,
which would be a second copy of up to 500 MiB, read in full before we could refuse it. Here the
body is decoded as it arrives (werkzeug's sans-IO ``MultipartDecoder``) and the part named
``file`` goes chunk by chunk into ``UploadFile``, which refuses a body over the byte limit or
content that is no media at the first chunk that shows it. Small form fields (``kind``,
``fileType``) are kept in memory, bounded in size and number; other file parts are skipped.

A client that stops sending in the middle of its body is dropped after ``STALL_TIMEOUT_S``
(on gunicorn, whose socket the WSGI environ carries) instead of holding a thread forever.
"""

from __future__ import annotations

import socket

from flask import request
from werkzeug.exceptions import ClientDisconnected
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from ..errors import BadInput
from ..jobs import ScanService
from ..jobs.upload import UploadFile

FILE_FIELD = "file"
READ_BYTES = 256 * 1024
FIRST_READ_BYTES = 8 * 1024
"""The body's first ``HEADERS_BYTES`` are read in small steps: a server's read waits until it
has all it asked for, and the first few KiB decide whether the upload is refused."""
FIELD_BYTES = 1024
"""A plain form field (``kind``, ``fileType``) longer than this is refused."""
MAX_PARTS = 16
HEADERS_BYTES = 64 * 1024
"""Bytes the decoder may hold while looking for a boundary or a part's headers: a body that is
not multipart at all is refused after this much, not buffered whole in memory."""
STALL_TIMEOUT_S = 60.0
"""A body that sends nothing for this long is abandoned (400)."""

NO_FILE = "no file: send the media as the multipart/form-data field 'file'"


class _Form:
    """The parts of one multipart body, as they arrive."""

    def __init__(self, service: ScanService) -> None:
        self.service = service
        self.fields: dict[str, str] = {}
        self.upload: UploadFile | None = None
        self._parts = 0
        self._field: tuple[str, bytearray] | None = None
        self._in_file = False

    def on(self, event) -> None:
        if isinstance(event, File | Field):
            self._start(event)
        elif isinstance(event, Data):
            self._data(event.data, event.more_data)

    def _start(self, event: File | Field) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise BadInput(f"too many form fields: at most {MAX_PARTS}")
        self._in_file, self._field = False, None
        if isinstance(event, File):
            if event.name == FILE_FIELD and event.filename and self.upload is None:
                self.upload = self.service.new_upload(event.filename)
                self._in_file = True
        else:
            self._field = (event.name, bytearray())

    def _data(self, data: bytes, more: bool) -> None:
        if self._in_file:
            assert self.upload is not None
            self.upload.write(data)
            if not more:
                self.upload.finish()
        elif self._field is not None:
            name, value = self._field
            value += data
            if len(value) > FIELD_BYTES:
                raise BadInput(f"the form field {name!r} is longer than {FIELD_BYTES} bytes")
            if not more:
                self.fields[name] = value.decode("utf-8", "replace")


def receive(service: ScanService) -> tuple[UploadFile, dict[str, str]]:
    """The request's ``file`` part, written and finished, and its other (small) form fields.

    Raises ``BadInput`` (400) for a body that is not a complete multipart form with a file,
    and whatever ``UploadFile`` refuses (413, 415, 400 empty) as soon as it shows; the file is
    removed on every error. The caller queues it inside ``with upload:``.
    """
    boundary = request.mimetype_params.get("boundary")
    if request.mimetype != "multipart/form-data" or not boundary:
        raise BadInput(NO_FILE)
    form = _Form(service)
    try:
        _decode(MultipartDecoder(boundary.encode("latin-1")), form)
        if form.upload is None or not form.upload.finished:
            raise BadInput(NO_FILE)
    except BaseException:
        if form.upload is not None:
            form.upload.discard()
        raise
    return form.upload, form.fields


def _decode(decoder: MultipartDecoder, form: _Form) -> None:
    """Feed the body to ``decoder`` chunk by chunk and its events to ``form``."""
    sock = request.environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket):
        sock.settimeout(STALL_TIMEOUT_S)
    received = 0
    try:
        while True:
            chunk = _read(
                request.stream, READ_BYTES if received > HEADERS_BYTES else FIRST_READ_BYTES
            )
            received += len(chunk)
            decoder.receive_data(chunk or None)
            event = decoder.next_event()
            while not isinstance(event, NeedData | Epilogue):
                form.on(event)
                event = decoder.next_event()
            if isinstance(event, Epilogue) or not chunk:
                return
            if len(decoder.buffer) > HEADERS_BYTES:
                raise BadInput("not a multipart/form-data body (no boundary or part headers)")
    except ValueError as e:  # the decoder's words for a malformed or cut body
        raise BadInput(f"the upload is not a complete multipart/form-data body ({e})") from e
    finally:
        if isinstance(sock, socket.socket):
            sock.settimeout(None)


def _read(stream, size: int) -> bytes:
    try:
        return stream.read(size)
    except ClientDisconnected:
        raise BadInput(
            "the upload stopped before the end of its body (the connection closed, or sent"
            f" nothing for {STALL_TIMEOUT_S:g} s)"
        ) from None
