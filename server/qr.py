"""QR codes of public URLs, as SVG (for pages and posters) and PNG (for chat and print shops).

Error correction H (30 % of the code may be lost) and the standard 4-module quiet zone:
a poster on a wall gets dirty, folded and photographed at an angle. The PNG goes through
PyPNG, so Pillow is not needed.
"""

from __future__ import annotations

import functools
import io

import qrcode
import qrcode.constants
from qrcode.image.pure import PyPNGImage

QUIET_ZONE = 4
PNG_MODULE_PIXELS = 10


def _code(url: str) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_H, border=QUIET_ZONE)
    code.add_data(url.encode("utf-8"))
    code.make(fit=True)
    return code


@functools.lru_cache(maxsize=256)  # drawing one takes ~10 ms of pure Python; a poster page asks often
def qr_svg(url: str, *, size: str = "") -> str:
    """An SVG QR code: one path of dark runs on a white square (a few hundred bytes).

    `size` (a CSS length such as `120mm`) sets width and height; without it the image
    fills its container.
    """
    matrix = _code(url).get_matrix()  # includes the quiet zone
    side = len(matrix)
    runs = []
    for y, row in enumerate(matrix):
        x = 0
        while x < side:
            if not row[x]:
                x += 1
                continue
            start = x
            while x < side and row[x]:
                x += 1
            runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
    dimensions = f' width="{size}" height="{size}"' if size else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}"{dimensions} '
        f'shape-rendering="crispEdges" role="img" aria-label="二维码">'
        f'<rect width="{side}" height="{side}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>'
    )


@functools.lru_cache(maxsize=256)
def qr_png(url: str, *, module_pixels: int = PNG_MODULE_PIXELS) -> bytes:
    """A black-and-white PNG QR code, `module_pixels` pixels per module."""
    code = _code(url)
    code.box_size = module_pixels
    buffer = io.BytesIO()
    code.make_image(image_factory=PyPNGImage).save(buffer)
    return buffer.getvalue()
