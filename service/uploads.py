"""Users' own files: CSV tables, datasets and model weights, checked before they are kept.

Each upload lives in ``<uploads_dir>/<user id>/<upload id>/`` and jobs name it
``upload:<id>``. What is kept is a format the loaders parse, never a pickle: a table is a
UTF-8 CSV with a header; a dataset is a zip or tar archive of an ImageFolder tree
(``<class>/<image>``) or CIFAR-10's binary batches, unpacked without links, absolute names
or ``..``; a model is safetensors, a weights-only ``torch.save`` file (a state dict, or a whole
module of ``torch.nn``'s and LightSearch's layers) or a LightSearch compressed artifact, whose
pickles are scanned (never loaded: the API does not import torch).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from search.datasets import IMAGE_EXTENSIONS
from search.pickle_scan import UnsafePickle, check_pickle, check_torch_zip
from service.core.errors import InvalidInput

KINDS = ("table", "dataset", "model")
MAX_MEMBERS = 200_000
_SAFETENSORS_DTYPES = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL",
                       "F8_E4M3", "F8_E5M2", "U16", "U32", "U64"}


class BadUpload(InvalidInput):
    """The file is not what its kind needs (422 naming ``file``)."""

    def __init__(self, message: str) -> None:
        super().__init__("file", message)


def upload_dir(root: Path, owner_id: int, upload_id: str) -> Path:
    return root / str(owner_id) / upload_id


# ---- tables ----------------------------------------------------------------------------------
def check_table(path: Path) -> None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = csv.reader(fh)
            header = next(rows, None)
            first = next(rows, None)
    except (UnicodeDecodeError, csv.Error) as err:
        raise BadUpload(f"a table is a UTF-8 CSV file ({err})") from None
    if not header or not any(h.strip() for h in header):
        raise BadUpload("a table needs a header row of column names")
    if first is None:
        raise BadUpload("the table has a header but no rows")


# ---- model weights ---------------------------------------------------------------------------
def _check_safetensors(path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if not 2 <= n <= min(size - 8, 100_000_000):
            raise BadUpload("not a safetensors file (header length)")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BadUpload("not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise BadUpload("not a safetensors file (header is not an object)")
    body = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        ok = (isinstance(info, dict) and info.get("dtype") in _SAFETENSORS_DTYPES
              and isinstance(info.get("shape"), list)
              and all(isinstance(d, int) and d >= 0 for d in info["shape"])
              and isinstance(info.get("data_offsets"), list) and len(info["data_offsets"]) == 2
              and all(isinstance(o, int) for o in info["data_offsets"])
              and 0 <= info["data_offsets"][0] <= info["data_offsets"][1] <= body)
        if not ok:
            raise BadUpload(f"safetensors tensor {str(name)[:100]!r} has a bad entry")


def _check_artifact(zf: zipfile.ZipFile) -> None:
    try:
        manifest = json.loads(zf.read("manifest.json"))
        skeleton = zf.read("skeleton.pt")
    except (KeyError, ValueError, zipfile.BadZipFile) as err:
        raise BadUpload(f"not a LightSearch compressed artifact ({err})") from None
    if not isinstance(manifest, dict) or "tensors" not in manifest:
        raise BadUpload("not a LightSearch compressed artifact (manifest)")
    try:
        with zipfile.ZipFile(io.BytesIO(skeleton)) as inner:
            pkl = [n for n in inner.namelist() if n.endswith("data.pkl")]
            if len(pkl) != 1:
                raise BadUpload("artifact skeleton is not a torch.save file")
            check_pickle(inner.read(pkl[0]), modules=True)
    except zipfile.BadZipFile:
        raise BadUpload("artifact skeleton is not a torch.save file") from None


def check_model(path: Path) -> None:
    """Safetensors, a weights-only torch file, or a LightSearch compressed artifact."""
    with path.open("rb") as fh:
        head = fh.read(9)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                if "manifest.json" in zf.namelist():
                    _check_artifact(zf)
                    return
            check_torch_zip(path, modules=True)  # a state dict, or a whole model's layers
            return
    except UnsafePickle as err:
        raise BadUpload(f"model files must hold tensors only, not code: {err}") from None
    if len(head) == 9 and head[8:9] == b"{":
        _check_safetensors(path)
        return
    raise BadUpload("model weights must be a safetensors file, a torch.save file (state "
                    "dict, loadable with weights_only=True) or a LightSearch artifact (.lsz)")


# ---- datasets --------------------------------------------------------------------------------
def _member_name(name: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts or "\x00" in name:
        raise BadUpload(f"archive member {name[:200]!r} has an unsafe name")
    return p


def _unpack_zip(src: Path, dest: Path, max_bytes: int) -> None:
    with zipfile.ZipFile(src) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise BadUpload(f"the archive holds more than {MAX_MEMBERS} files")
        if sum(i.file_size for i in infos) > max_bytes:
            raise BadUpload(f"the archive unpacks to more than {max_bytes} bytes")
        for info in infos:
            rel = _member_name(info.filename)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise BadUpload(f"archive member {info.filename[:200]!r} is a link")
            target = dest / rel
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as fin, target.open("wb") as fout:
                shutil.copyfileobj(fin, fout)


def _unpack_tar(src: Path, dest: Path, max_bytes: int) -> None:
    with tarfile.open(src) as tf:
        members = tf.getmembers()
        if len(members) > MAX_MEMBERS:
            raise BadUpload(f"the archive holds more than {MAX_MEMBERS} files")
        if sum(m.size for m in members) > max_bytes:
            raise BadUpload(f"the archive unpacks to more than {max_bytes} bytes")
        for m in members:
            _member_name(m.name)
            if not (m.isfile() or m.isdir()):
                raise BadUpload(f"archive member {m.name[:200]!r} is not a file or folder")
        tf.extractall(dest, filter="data")


def _dataset_entry(folder: Path) -> Path:
    """The unpacked tree's root: a lone top-level folder is stepped into."""
    items = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(items) == 1 and items[0].is_dir():
        return _dataset_entry(items[0])
    return folder


def _check_dataset(root: Path) -> None:
    if list(root.glob("data_batch_*.bin")):
        return
    if list(root.glob("data_batch_*")):
        raise BadUpload("CIFAR-10 python batches are pickles and are not accepted; upload the "
                        "binary version (data_batch_1.bin ... test_batch.bin)")
    classes = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    with_images = [c for c in classes if any(f.suffix.lower() in IMAGE_EXTENSIONS
                                             for f in c.rglob("*"))]
    if len(with_images) < 2 or len(with_images) != len(classes):
        raise BadUpload("a dataset archive holds an ImageFolder tree (<class>/<image>, at "
                        "least 2 class folders, each with images) or CIFAR-10 binary batches")


def unpack_dataset(src: Path, dest: Path, max_bytes: int) -> Path:
    """Unpack a zip or tar archive into ``dest``; returns the dataset's root folder."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(src):
            _unpack_zip(src, dest, max_bytes)
        elif tarfile.is_tarfile(src):
            _unpack_tar(src, dest, max_bytes)
        else:
            raise BadUpload("a dataset is a zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as err:
        raise BadUpload(f"cannot unpack the archive ({type(err).__name__})") from None
    root = _dataset_entry(dest)
    _check_dataset(root)
    return root
