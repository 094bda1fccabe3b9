"""The Sparkplug B payload schema (Eclipse Sparkplug 3.0, ``sparkplug_b.proto``), built as
protobuf descriptors in code from the spec's field list, and the message classes the
``protobuf`` runtime (upb, C) makes from them.

Why descriptors in code and not generated ``_pb2`` files: there is no build step to run and
no generated file to keep in sync; the field numbers below are the wire contract, written out
once, readable against the spec. Only what a host application reads or writes is typed in
full; the nested value kinds it skips (DataSet, Template, PropertySetList, extensions) are
declared too, so that a payload carrying them still parses (and is counted as skipped).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "org.eclipse.tahu.protobuf"

_F = descriptor_pb2.FieldDescriptorProto
_OPT = _F.LABEL_OPTIONAL
_REP = _F.LABEL_REPEATED
_TYPES = {
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}


class DataType(IntEnum):
    """Sparkplug B data types (spec §6.4.16)."""

    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14
    UUID = 15
    DataSet = 16
    Bytes = 17
    File = 18
    Template = 19
    PropertySet = 20
    PropertySetList = 21
    Int8Array = 22
    Int16Array = 23
    Int32Array = 24
    Int64Array = 25
    UInt8Array = 26
    UInt16Array = 27
    UInt32Array = 28
    UInt64Array = 29
    FloatArray = 30
    DoubleArray = 31
    BooleanArray = 32
    StringArray = 33
    DateTimeArray = 34


# (name, number, label, type or ".Payload.X" message reference, oneof index or None)
_Field = tuple[str, int, int, str, int | None]


def _message(
    name: str,
    fields: list[_Field],
    *,
    oneofs: tuple[str, ...] = (),
    extensions_from: int | None = None,
    nested: list[descriptor_pb2.DescriptorProto] | None = None,
) -> descriptor_pb2.DescriptorProto:
    msg = descriptor_pb2.DescriptorProto(name=name)
    for oneof in oneofs:
        msg.oneof_decl.add(name=oneof)
    for fname, number, label, ftype, oneof_index in fields:
        f = msg.field.add(name=fname, number=number, label=label)
        if ftype in _TYPES:
            f.type = _TYPES[ftype]
        else:
            f.type = _F.TYPE_MESSAGE
            f.type_name = f".{PACKAGE}{ftype}"
        if oneof_index is not None:
            f.oneof_index = oneof_index
    if extensions_from is not None:
        msg.extension_range.add(start=extensions_from, end=536870912)  # "to max"
    msg.nested_type.extend(nested or [])
    return msg


def _extension_only(name: str) -> descriptor_pb2.DescriptorProto:
    return _message(name, [], extensions_from=1)


def _file() -> descriptor_pb2.FileDescriptorProto:
    p = ".Payload"
    parameter = _message(
        "Parameter",
        [
            ("name", 1, _OPT, "string", None),
            ("type", 2, _OPT, "uint32", None),
            ("int_value", 3, _OPT, "uint32", 0),
            ("long_value", 4, _OPT, "uint64", 0),
            ("float_value", 5, _OPT, "float", 0),
            ("double_value", 6, _OPT, "double", 0),
            ("boolean_value", 7, _OPT, "bool", 0),
            ("string_value", 8, _OPT, "string", 0),
            ("extension_value", 9, _OPT, f"{p}.Template.Parameter.ParameterValueExtension", 0),
        ],
        oneofs=("value",),
        nested=[_extension_only("ParameterValueExtension")],
    )
    template = _message(
        "Template",
        [
            ("version", 1, _OPT, "string", None),
            ("metrics", 2, _REP, f"{p}.Metric", None),
            ("parameters", 3, _REP, f"{p}.Template.Parameter", None),
            ("template_ref", 4, _OPT, "string", None),
            ("is_definition", 5, _OPT, "bool", None),
        ],
        extensions_from=6,
        nested=[parameter],
    )
    dataset_value = _message(
        "DataSetValue",
        [
            ("int_value", 1, _OPT, "uint32", 0),
            ("long_value", 2, _OPT, "uint64", 0),
            ("float_value", 3, _OPT, "float", 0),
            ("double_value", 4, _OPT, "double", 0),
            ("boolean_value", 5, _OPT, "bool", 0),
            ("string_value", 6, _OPT, "string", 0),
            ("extension_value", 7, _OPT, f"{p}.DataSet.DataSetValue.DataSetValueExtension", 0),
        ],
        oneofs=("value",),
        nested=[_extension_only("DataSetValueExtension")],
    )
    row = _message(
        "Row",
        [("elements", 1, _REP, f"{p}.DataSet.DataSetValue", None)],
        extensions_from=2,
    )
    dataset = _message(
        "DataSet",
        [
            ("num_of_columns", 1, _OPT, "uint64", None),
            ("columns", 2, _REP, "string", None),
            ("types", 3, _REP, "uint32", None),
            ("rows", 4, _REP, f"{p}.DataSet.Row", None),
        ],
        extensions_from=5,
        nested=[dataset_value, row],
    )
    property_value = _message(
        "PropertyValue",
        [
            ("type", 1, _OPT, "uint32", None),
            ("is_null", 2, _OPT, "bool", None),
            ("int_value", 3, _OPT, "uint32", 0),
            ("long_value", 4, _OPT, "uint64", 0),
            ("float_value", 5, _OPT, "float", 0),
            ("double_value", 6, _OPT, "double", 0),
            ("boolean_value", 7, _OPT, "bool", 0),
            ("string_value", 8, _OPT, "string", 0),
            ("propertyset_value", 9, _OPT, f"{p}.PropertySet", 0),
            ("propertysets_value", 10, _OPT, f"{p}.PropertySetList", 0),
            ("extension_value", 11, _OPT, f"{p}.PropertyValue.PropertyValueExtension", 0),
        ],
        oneofs=("value",),
        nested=[_extension_only("PropertyValueExtension")],
    )
    property_set = _message(
        "PropertySet",
        [
            ("keys", 1, _REP, "string", None),
            ("values", 2, _REP, f"{p}.PropertyValue", None),
        ],
        extensions_from=3,
    )
    property_set_list = _message(
        "PropertySetList",
        [("propertyset", 1, _REP, f"{p}.PropertySet", None)],
        extensions_from=2,
    )
    metadata = _message(
        "MetaData",
        [
            ("is_multi_part", 1, _OPT, "bool", None),
            ("content_type", 2, _OPT, "string", None),
            ("size", 3, _OPT, "uint64", None),
            ("seq", 4, _OPT, "uint64", None),
            ("file_name", 5, _OPT, "string", None),
            ("file_type", 6, _OPT, "string", None),
            ("md5", 7, _OPT, "string", None),
            ("description", 8, _OPT, "string", None),
        ],
        extensions_from=9,
    )
    metric = _message(
        "Metric",
        [
            ("name", 1, _OPT, "string", None),
            ("alias", 2, _OPT, "uint64", None),
            ("timestamp", 3, _OPT, "uint64", None),
            ("datatype", 4, _OPT, "uint32", None),
            ("is_historical", 5, _OPT, "bool", None),
            ("is_transient", 6, _OPT, "bool", None),
            ("is_null", 7, _OPT, "bool", None),
            ("metadata", 8, _OPT, f"{p}.MetaData", None),
            ("properties", 9, _OPT, f"{p}.PropertySet", None),
            ("int_value", 10, _OPT, "uint32", 0),
            ("long_value", 11, _OPT, "uint64", 0),
            ("float_value", 12, _OPT, "float", 0),
            ("double_value", 13, _OPT, "double", 0),
            ("boolean_value", 14, _OPT, "bool", 0),
            ("string_value", 15, _OPT, "string", 0),
            ("bytes_value", 16, _OPT, "bytes", 0),
            ("dataset_value", 17, _OPT, f"{p}.DataSet", 0),
            ("template_value", 18, _OPT, f"{p}.Template", 0),
            ("extension_value", 19, _OPT, f"{p}.Metric.MetricValueExtension", 0),
        ],
        oneofs=("value",),
        nested=[_extension_only("MetricValueExtension")],
    )
    payload = _message(
        "Payload",
        [
            ("timestamp", 1, _OPT, "uint64", None),
            ("metrics", 2, _REP, f"{p}.Metric", None),
            ("seq", 3, _OPT, "uint64", None),
            ("uuid", 4, _OPT, "string", None),
            ("body", 5, _OPT, "bytes", None),
        ],
        extensions_from=6,
        nested=[
            template,
            dataset,
            property_value,
            property_set,
            property_set_list,
            metadata,
            metric,
        ],
    )
    return descriptor_pb2.FileDescriptorProto(
        name="factory_edge/sparkplug_b.proto",
        package=PACKAGE,
        syntax="proto2",
        message_type=[payload],
    )


# A pool of our own, so the schema cannot clash with another copy of sparkplug_b.proto that
# some other library registers in the default pool.
_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
Payload: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{PACKAGE}.Payload"))
