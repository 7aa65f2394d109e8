"""Where a tagging run's CPU goes: each stage's CPU time per photo, in one run of ``tag_folder``.

    python benchmarks/stage_costs.py [--photos 200] [--backend openvino-bf16]
    pip install simplejpeg && python benchmarks/stage_costs.py --decoders   # JPEG decoders compared

Each stage function is wrapped to add up the CPU time of the thread that
runs it (``time.thread_time``), so the figures hold on a busy machine too.
"predict" counts only the calling thread: OpenVINO computes in threads of
its own, whose time shows in the process total.  On two cores the run
cannot go faster than 2 / (process CPU per photo).

``--decoders`` times the JPEG decoders on the full-size photos instead:
Pillow (libjpeg-turbo) with DCT scaling, as terc-tag decodes, against
simplejpeg (libjpeg-turbo too, with its fast DCT and upsampling).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import DEFAULT_SOURCE, many_photos

import tagger.decode
import tagger.tagging.stages
from tagger.bundle import Bundle
from tagger.cli.common import default_model
from tagger.sessions import load_session
from tagger.tagging.pipeline import tag_folder


class StageClock:
    """CPU seconds and calls per stage, added up across threads."""

    def __init__(self):
        self.cpu, self.calls, self.lock = defaultdict(float), defaultdict(int), threading.Lock()

    def wrap(self, module, name: str, label: str) -> None:
        original = getattr(module, name)

        def timed(*args, **kwargs):
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                with self.lock:
                    self.cpu[label] += time.thread_time() - started
                    self.calls[label] += 1

        setattr(module, name, timed)


def stage_costs(photos: int, backend: str, source: Path) -> None:
    clock = StageClock()
    clock.wrap(tagger.decode, "read_inside", "read the file")
    clock.wrap(tagger.decode, "decode", "decode (DCT-scaled)")
    clock.wrap(tagger.tagging.stages, "edit_keywords", "merge keywords")
    clock.wrap(tagger.tagging.stages, "atomic_write", "write the copy (fsync)")
    clock.wrap(tagger.tagging.stages.State, "save", "record in the state")
    session = load_session(Bundle(default_model(), backend))
    clock.wrap(session, "predict_with_codes", "predict (calling thread)")
    with tempfile.TemporaryDirectory() as tmp:
        many_photos(Path(tmp) / "in", photos, source)
        cpu, wall = time.process_time(), time.perf_counter()
        summary = tag_folder(Path(tmp) / "in", Path(tmp) / "out", session)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert len(summary.tagged) == photos, summary.failed
    print(f"{photos} full-size photos, backend {backend}: {photos / wall:.1f} photos/s; process CPU "
          f"{cpu / photos * 1000:.1f} ms per photo (two cores allow at most {2 * photos / cpu:.1f} photos/s)")
    for label, seconds in sorted(clock.cpu.items(), key=lambda item: -item[1]):
        print(f"  {label:26s} {seconds / photos * 1000:6.1f} ms CPU per photo")


def decoders(source: Path, size: tuple[int, int] = (224, 224), rounds: int = 3) -> None:
    import numpy as np
    import simplejpeg
    from PIL import Image

    photos = [p.read_bytes() for p in sorted(source.glob("*.jpg"))]

    def pillow(data):
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", size)
        return np.asarray(image.resize(size, Image.BILINEAR))

    def simple(data):
        pixels = simplejpeg.decode_jpeg(data, "RGB", fastdct=True, fastupsample=True, min_height=size[1],
                                        min_width=size[0])
        return np.asarray(Image.fromarray(pixels).resize(size, Image.BILINEAR))

    for name, decode in (("terc-tag's decode", lambda data: tagger.decode.decode(data, size)), ("Pillow", pillow),
                         ("simplejpeg", simple)):
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            for data in photos:
                decode(data)
            best = min(best, (time.process_time() - started) / len(photos))
        print(f"{name:18s} {best * 1000:6.1f} ms CPU per full-size photo (best of {rounds})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--backend", default="openvino-bf16")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--decoders", action="store_true", help="compare JPEG decoders instead")
    args = parser.parse_args()
    if args.decoders:
        decoders(args.source)
    else:
        stage_costs(args.photos, args.backend, args.source)


if __name__ == "__main__":
    main()
