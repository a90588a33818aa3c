"""Takes apart a message teiten mailed to a partner, as the partner's mail client would.

    mail_check.py MESSAGE.eml OUTDIR

Writes every attachment, decoded, to OUTDIR/<its file name>. For a PGP/MIME message
(multipart/signed, RFC 3156) also writes the signed first part exactly as it was sent to
OUTDIR/signed.part: the bytes after the first boundary line up to, not including, the CRLF
before the next boundary (RFC 2046: that CRLF belongs to the boundary), and the signature to
OUTDIR/signature.asc, so that `gpg --verify signature.asc signed.part` checks the message.
Prints a JSON summary on standard output.
"""
import email
import email.policy
import json
import os
import sys

EML, OUT = sys.argv[1], sys.argv[2]
raw = open(EML, "rb").read()
msg = email.message_from_bytes(raw, policy=email.policy.default)
summary = {
    "from": str(msg["From"]),
    "to": str(msg["To"]),
    "subject": str(msg["Subject"]),
    "content_type": msg.get_content_type(),
    "protocol": msg.get_param("protocol"),
    "micalg": msg.get_param("micalg"),
    "crlf": b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b""),
    "attachments": [],
    "text": "",
}
if msg.get_content_type() == "multipart/signed":
    boundary = msg.get_boundary().encode()
    body = raw[raw.index(b"\r\n\r\n") + 4 :]
    opening = b"--" + boundary + b"\r\n"
    start = body.index(opening) + len(opening)
    end = body.index(b"\r\n--" + boundary, start)
    with open(os.path.join(OUT, "signed.part"), "wb") as f:
        f.write(body[start:end])
    signed, signature = msg.get_payload()
    summary["signature_type"] = signature.get_content_type()
    with open(os.path.join(OUT, "signature.asc"), "wb") as f:
        f.write(signature.get_content().encode() if isinstance(signature.get_content(), str) else signature.get_content())
for part in msg.walk():
    name = part.get_filename()
    if name:
        data = part.get_content()
        with open(os.path.join(OUT, os.path.basename(name)), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        summary["attachments"].append({"name": name, "type": part.get_content_type()})
    elif part.get_content_type() == "text/plain":
        summary["text"] += part.get_content()
print(json.dumps(summary))
