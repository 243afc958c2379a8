"""Read Marian's binary model format and retag its intgemm8 matrices for bergamot-translator.

The format (marian `src/common/binary.cpp`): uint64 version (1), uint64 item count, then per item a
header of four uint64 (name length, type id, shape length, data length), then the item names
(NUL-terminated), the shapes (int32 each), a uint64 padding length, the padding, and the items' data.

Upstream Marian (pymarian) tags int8-quantized matrices `0x10001`; the browsermt fork that
bergamot-translator and Firefox embed expects `0x4101` for the same bytes (quantized, transposed, the
quantization multiplier appended). Only the type ids differ, so retagging the headers is enough.
"""

import struct
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.common.step import StepError

BINARY_FILE_VERSION = 1
HEADER = struct.Struct("<QQQQ")
UPSTREAM_TO_BROWSERMT = {0x10001: 0x4101, 0x10002: 0x4102}  # intgemm8, intgemm16
FLOAT32 = 0x0404
# Element sizes by type id (Marian's TypeClass: size in the low byte).
KNOWN_TYPES = {0x0101: "int8", 0x0404: "float32", 0x0204: "uint32", 0x0104: "int32", 0x0402: "float16"}
KNOWN_TYPES.update({k: "intgemm8" for k in (0x10001, 0x4101)})
KNOWN_TYPES.update({k: "intgemm16" for k in (0x10002, 0x4102)})


@dataclass
class Item:
    name: str
    type_id: int
    shape: tuple[int, ...]
    data_length: int
    header_offset: int
    data_offset: int

    @property
    def elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


def read_items(data: bytes, where: str = "model") -> list[Item]:
    try:
        version, count = struct.unpack_from("<QQ", data, 0)
        if version != BINARY_FILE_VERSION:
            raise StepError(f"{where}: not a Marian binary model (version {version}, expected 1)")
        if count > 1_000_000:
            raise StepError(f"{where}: not a Marian binary model ({count} items)")
        offset = 16
        headers = []
        for _ in range(count):
            headers.append((offset, *HEADER.unpack_from(data, offset)))
            offset += HEADER.size
        names = []
        for _, name_length, _, _, _ in headers:
            names.append(data[offset : offset + name_length].rstrip(b"\0").decode("utf-8"))
            offset += name_length
        shapes = []
        for _, _, _, shape_length, _ in headers:
            shapes.append(struct.unpack_from(f"<{shape_length}i", data, offset))
            offset += 4 * shape_length
        (padding,) = struct.unpack_from("<Q", data, offset)
        offset += 8 + padding
        total = offset + sum(h[4] for h in headers)
    except (struct.error, UnicodeDecodeError) as error:
        raise StepError(f"{where}: not a Marian binary model ({error})") from None
    if total != len(data):
        raise StepError(
            f"{where}: truncated or not a Marian binary model ({len(data)} bytes, {total} expected)"
        )
    items = []
    for (header_offset, _, type_id, _, data_length), name, shape in zip(headers, names, shapes, strict=True):
        items.append(Item(name, type_id, tuple(shape), data_length, header_offset, offset))
        offset += data_length
    return items


def embedded_config(data: bytes, items: list[Item], where: str = "model") -> dict:
    """The training options Marian stores in the model (`special:model.yml`): the architecture a decoder
    rebuilds the graph from."""
    for item in items:
        if item.name == "special:model.yml":
            text = data[item.data_offset : item.data_offset + item.data_length].rstrip(b"\0")
            try:
                return yaml.safe_load(text.decode("utf-8")) or {}
            except (UnicodeDecodeError, yaml.YAMLError) as error:
                raise StepError(f"{where}: unreadable special:model.yml ({error})") from None
    return {}


def retag_for_browsermt(source: Path, destination: Path) -> int:
    """Copies a pymarian binary model, retagging its intgemm matrices with the browsermt type ids;
    returns how many items were retagged."""
    data = bytearray(source.read_bytes())
    items = read_items(bytes(data), str(source))
    retagged = 0
    for item in items:
        if item.type_id not in KNOWN_TYPES:
            raise StepError(f"{source}: item {item.name} has an unknown type id {item.type_id:#x}")
        new_type = UPSTREAM_TO_BROWSERMT.get(item.type_id)
        if new_type is not None:
            struct.pack_into("<Q", data, item.header_offset + 8, new_type)
            retagged += 1
    if retagged == 0:
        raise StepError(f"{source}: no intgemm matrices to retag: is it an int8-quantized model?")
    destination.write_bytes(data)
    return retagged


def parameter_statistics(items: list[Item]) -> dict:
    """Parameters of the encoder, the decoder and the embeddings (the reference's modelStatistics)."""
    stats = {"parameters": 0, "encoder_parameters": 0, "decoder_parameters": 0, "embeddings_parameters": 0}
    for item in items:
        if item.name.startswith("special:"):
            continue
        stats["parameters"] += item.elements
        if item.name.startswith("encoder_"):
            stats["encoder_parameters"] += item.elements
        elif item.name.startswith("decoder_"):
            stats["decoder_parameters"] += item.elements
        elif "Wemb" in item.name:
            stats["embeddings_parameters"] += item.elements
    return stats
