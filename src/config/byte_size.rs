//! [`ByteSize`]: a byte count as Promtail's `flagext.ByteSize` reads it (`max_line_size: 256kb`, `2M`,
//! `1048576`): base-1024 units, case-insensitive. Errors are raised inside the serde visitor so they carry
//! the value's line:column; the type serializes back to the form Promtail prints (`256KB`).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const BYTE_SIZE_HINT: &str =
    "expected a whole number of bytes, optionally followed by B, KB, MB, GB, TB, PB \
     or EB (base 1024, case-insensitive; KiB, MiB, ... also accepted), e.g. 256KB or 2MB";

/// A byte count as Promtail's `flagext.ByteSize` reads it (`max_line_size: 256kb`, `2M`, `1048576`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn get(self) -> u64 {
        self.0
    }

    /// `c2h5oh/datasize` after Promtail upper-cases the input: digits, optional spaces, a unit among
    /// B/BYTE, K/KB/KILO/KILOBYTE(S), M.., G.., T.., P.., E/EB, all powers of 1024. No fractions.
    /// logferry also accepts the IEC spellings KiB..EiB (same values), which Promtail rejects.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid size {text:?}: {BYTE_SIZE_HINT}");
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let value: u64 = text[..digits]
            .parse()
            .map_err(|_| format!("size {text:?} is out of range"))?;
        let unit = text[digits..].trim().to_ascii_lowercase();
        let shift = match unit.as_str() {
            "" | "b" | "byte" => 0,
            "k" | "kb" | "kilo" | "kilobyte" | "kilobytes" | "kib" => 10,
            "m" | "mb" | "mega" | "megabyte" | "megabytes" | "mib" => 20,
            "g" | "gb" | "giga" | "gigabyte" | "gigabytes" | "gib" => 30,
            "t" | "tb" | "tera" | "terabyte" | "terabytes" | "tib" => 40,
            "p" | "pb" | "peta" | "petabyte" | "petabytes" | "pib" => 50,
            "e" | "eb" | "eib" => 60,
            _ => return Err(invalid()),
        };
        value
            .checked_mul(1u64 << shift)
            .map(ByteSize)
            .ok_or_else(|| format!("size {text:?} is out of range"))
    }
}

impl From<ByteSize> for u64 {
    fn from(b: ByteSize) -> u64 {
        b.0
    }
}

impl fmt::Display for ByteSize {
    /// `datasize.ByteSize.String()`: the largest unit that divides exactly (`1MB`, `256KB`, `1000B`, `0B`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u32); 6] = [
            ("EB", 60),
            ("PB", 50),
            ("TB", 40),
            ("GB", 30),
            ("MB", 20),
            ("KB", 10),
        ];
        if self.0 == 0 {
            return f.write_str("0B");
        }
        for (name, shift) in UNITS {
            if self.0 % (1u64 << shift) == 0 {
                return write!(f, "{}{name}", self.0 >> shift);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ByteSizeVisitor;
        impl Visitor<'_> for ByteSizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 256KB or a number of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size {v}: {BYTE_SIZE_HINT}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ByteSize, E> {
                Err(E::custom(format!("invalid size {v}: {BYTE_SIZE_HINT}")))
            }
        }
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_size_parses_like_flagext() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("100", 100),
            ("100b", 100),
            ("100B", 100),
            ("256kb", 256 << 10),
            ("256KB", 256 << 10),
            ("256Kb", 256 << 10),
            ("256k", 256 << 10),
            ("2M", 2 << 20),
            ("2mb", 2 << 20),
            ("1MiB", 1 << 20),
            ("1 MB", 1 << 20),
            ("1megabytes", 1 << 20),
            ("3g", 3 << 30),
            ("1TB", 1 << 40),
            ("1PB", 1 << 50),
            ("1EB", 1 << 60),
        ];
        for (text, want) in cases {
            assert_eq!(ByteSize::parse(text), Ok(ByteSize(*want)), "{text}");
        }
        let hint =
            "expected a whole number of bytes, optionally followed by B, KB, MB, GB, TB, PB or EB \
                    (base 1024, case-insensitive; KiB, MiB, ... also accepted), e.g. 256KB or 2MB";
        for bad in ["", "MB", "1.5MB", "2XB", "-1", "1 M B"] {
            assert_eq!(
                ByteSize::parse(bad).unwrap_err(),
                format!("invalid size {bad:?}: {hint}"),
                "{bad}"
            );
        }
        assert_eq!(
            ByteSize::parse("16EB").unwrap_err(),
            "size \"16EB\" is out of range"
        );
        assert_eq!(
            serde_yaml_ng::from_str::<ByteSize>("1048576").unwrap(),
            ByteSize(1 << 20)
        );
        assert_eq!(
            serde_yaml_ng::from_str::<ByteSize>("256kb").unwrap(),
            ByteSize(256 << 10)
        );
    }

    #[test]
    fn byte_size_prints_like_datasize() {
        let cases: &[(u64, &str)] = &[
            (0, "0B"),
            (1000, "1000B"),
            (1024, "1KB"),
            (1 << 20, "1MB"),
            (3 << 30, "3GB"),
        ];
        for (n, want) in cases {
            assert_eq!(ByteSize(*n).to_string(), *want);
            assert_eq!(ByteSize::parse(want).unwrap().0, *n);
        }
    }
}
