"""Make docs/screenshot.png: the results page of the real app, in headless Chromium.

Run: ``python -m docs.screenshot [--out PATH]`` (or ``make screenshot``). It builds the
app with ``create_app`` on a temporary instance folder (embedded Milvus Lite, local
image folder), adds a few Grocery Store photos with ``gallery add --label-from-folder``
through the shared MobileNetV2, serves it with werkzeug on 127.0.0.1, and photographs
``/search?key=<key>&k=N`` for one of them. Needs ../shared and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "mobilenet_v2_1.0_224"
GROCERY = SHARED / "datasets" / "grocery" / "dataset" / "train"
# Leaf folders of the Grocery training split: a few look-alike products, so the
# ranking shows near misses (limes next to lemons) as well as matches.
LABELS = ("Fruit/Lime", "Fruit/Lemon", "Fruit/Kiwi", "Fruit/Avocado", "Vegetables/Zucchini",
          "Vegetables/Cucumber", "Vegetables/Asparagus", "Fruit/Banana")
PER_LABEL = 10
QUERY = "Fruit/Lime"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--k", type=int, default=12, help="results on the page")
    parser.add_argument("--size", default="1280,900", help="browser window, width,height")
    args = parser.parse_args()
    for needed in (MODEL / "config.json", GROCERY, Path(CHROMIUM)):
        if not needed.exists():
            raise SystemExit(f"missing {needed}: the screenshot needs ../shared and chromium")
    with tempfile.TemporaryDirectory(prefix="lookalike-shot-") as tmp:
        work = Path(tmp)
        gallery, query = copy_gallery(work / "gallery")
        png = shoot(make_app(work / "instance"), gallery, query, args.k, args.size, work)
    args.out.write_bytes(shrink(png))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


def copy_gallery(root: Path) -> tuple[Path, bytes]:
    """PER_LABEL photos of each label into root/<label>/; returns root and the query photo."""
    query = b""
    for label in LABELS:
        folder = root / label.split("/")[-1]
        folder.mkdir(parents=True)
        for path in sorted((GROCERY / label).rglob("*.jpg"))[:PER_LABEL]:
            shutil.copyfile(path, folder / path.name)
            if label == QUERY and not query:
                query = path.read_bytes()
    return root, query


def make_app(instance: Path):  # type: ignore[no-untyped-def]
    """The real app on every default but the instance folder, model and secrets.

    The admin hash is of a password nobody knows, so no one-time password is printed.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    from werkzeug.security import generate_password_hash

    from app import create_app
    from app.config import Config

    config = {k: getattr(Config, k) for k in dir(Config) if k.isupper()}
    config.update(INSTANCE_PATH=str(instance), MODEL=str(MODEL), SECRET_KEY=os.urandom(16).hex(),
                  ADMIN_PASSWORD_HASH=generate_password_hash(os.urandom(16).hex()))
    return create_app(config)


def shoot(app, gallery: Path, query: bytes, k: int, size: str, work: Path) -> bytes:  # type: ignore[no-untyped-def]
    """Ingest, serve on a free loopback port, photograph a search by key; PNG bytes."""
    from werkzeug.serving import make_server

    from app.vectors.connect import local_data_dir
    from app.vectors.lite_server import stop_server

    server = None
    try:
        added = app.test_cli_runner().invoke(
            args=["gallery", "add", str(gallery), "--label-from-folder"])
        if added.exit_code != 0:
            raise SystemExit(f"gallery add failed:\n{added.output}")
        answer = app.test_client().post(
            "/api/search", data={"image": (io.BytesIO(query), "query.jpg"), "k": "1"},
            content_type="multipart/form-data")
        key = answer.get_json()["results"][0]["key"]
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/search?key={key}&k={k}"
        out = work / "shot.png"
        subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={work / 'profile'}",
                        f"--screenshot={out}", f"--window-size={size}", url],
                       check=True, capture_output=True, timeout=120)
        return out.read_bytes()
    finally:
        if server is not None:
            server.shutdown()
        data_dir = local_data_dir(app)
        if data_dir is not None:
            stop_server(data_dir)


def shrink(png: bytes) -> bytes:
    """256 colours: the page is flat colour around small photos, so it barely shows."""
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(256)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


if __name__ == "__main__":
    main()
