//! Protobuf wire-format helpers for the hand-rolled encoders (the Loki push, the OTLP export
//! request), which write messages straight from the entries a batch holds instead of copying every
//! line into prost structs first.

/// Wire type of a length-delimited field.
pub const LEN: u32 = 2;
/// Wire type of a varint field.
pub const VARINT: u32 = 0;
/// Wire type of a 64-bit fixed field.
pub const FIXED64: u32 = 1;

/// Bytes a length-delimited field takes, key included (fields here all have numbers below 16).
pub fn field_len(_field: u32, len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

pub fn put_key(out: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(out, u64::from((field << 3) | wire));
}

pub fn put_str(out: &mut Vec<u8>, field: u32, s: &str) {
    put_key(out, field, LEN);
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A `fixed64` field.
pub fn put_fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    put_key(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A length-delimited field's key and length, before its `len` bytes.
pub fn put_len(out: &mut Vec<u8>, field: u32, len: usize) {
    put_key(out, field, LEN);
    put_varint(out, len as u64);
}
