//! PACK: SoftEther's key/value container (PROTOCOL-NOTES.md §4).
//!
//! ```text
//! PACK    := u32 element_count, element × element_count
//! element := u32 name_len + 1, name (name_len bytes, no NUL),
//!            u32 type, u32 value_count (≥ 1), value × value_count
//! value   := INT u32 | INT64 u64 | DATA u32 size + bytes
//!          | STR u32 size + bytes (no NUL) | UNISTR u32 size + UTF-8 bytes + NUL
//! ```
//!
//! All integers are big-endian. Every element holds values of one type, so
//! [`Values`] is one vector per type. Decoding checks every count and
//! length against the input that is left *before* it allocates, so a
//! hostile PACK costs at most a small multiple of its own size; names are
//! unique case-insensitively, as SoftEther's reader requires.
//!
//! Reading is by name, case-insensitive and type-checked (`get_int` does not
//! find an INT64), like SoftEther's `PackGetInt` family. Handshakes are not
//! the hot path: a decoded [`Pack`] owns its data.

use std::collections::HashSet;

/// Most elements in one PACK (SoftEther's 64-bit `MAX_ELEMENT_NUM`).
pub const MAX_ELEMENTS: u32 = 262_144;
/// Most values in one element (SoftEther's 64-bit `MAX_VALUE_NUM`).
pub const MAX_VALUES: u32 = 262_144;
/// Largest single value (SoftEther's 64-bit `MAX_VALUE_SIZE`, 384 MiB).
pub const MAX_VALUE_SIZE: u32 = 384 * 1024 * 1024;
/// Longest element name. SoftEther silently truncates longer names; this
/// decoder refuses them (no real peer sends one; truncating could make two
/// names collide).
pub const MAX_NAME_LEN: usize = 63;

/// The wire number of each value type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    Int = 0,
    Data = 1,
    Str = 2,
    UniStr = 3,
    Int64 = 4,
}

impl ValueType {
    /// The type for a wire number; `None` for an unknown one (which would
    /// make the rest of the PACK misparse, so the decoder refuses it).
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Int,
            1 => Self::Data,
            2 => Self::Str,
            3 => Self::UniStr,
            4 => Self::Int64,
            _ => return None,
        })
    }

    /// The fewest bytes one value of this type takes on the wire.
    fn min_wire_len(self) -> usize {
        match self {
            Self::Int | Self::Data | Self::Str | Self::UniStr => 4,
            Self::Int64 => 8,
        }
    }
}

/// The values of one element: never empty, all of one type.
///
/// STR values are kept as the bytes received (SoftEther's STR is a C string
/// in the sender's code page); UNISTR values without their trailing NUL.
/// [`Pack::get_str`] and friends check UTF-8 and trim, as SoftEther's
/// reader trims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Values {
    Int(Vec<u32>),
    Data(Vec<Vec<u8>>),
    Str(Vec<Vec<u8>>),
    UniStr(Vec<Vec<u8>>),
    Int64(Vec<u64>),
}

impl Values {
    /// The wire type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::Int(_) => ValueType::Int,
            Self::Data(_) => ValueType::Data,
            Self::Str(_) => ValueType::Str,
            Self::UniStr(_) => ValueType::UniStr,
            Self::Int64(_) => ValueType::Int64,
        }
    }

    /// How many values.
    pub fn len(&self) -> usize {
        match self {
            Self::Int(v) => v.len(),
            Self::Int64(v) => v.len(),
            Self::Data(v) | Self::Str(v) | Self::UniStr(v) => v.len(),
        }
    }

    /// Whether there is no value (never true for a decoded element; the
    /// encoder refuses to build one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::Int(v) => 4 * v.len(),
            Self::Int64(v) => 8 * v.len(),
            Self::Data(v) | Self::Str(v) => v.iter().map(|b| 4 + b.len()).sum(),
            // UNISTR's size counts a trailing NUL.
            Self::UniStr(v) => v.iter().map(|b| 4 + b.len() + 1).sum(),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Int(v) => v.iter().for_each(|x| put_u32(out, *x)),
            Self::Int64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            Self::Data(v) | Self::Str(v) => v.iter().for_each(|b| {
                put_u32(out, len_u32(b.len()));
                out.extend_from_slice(b);
            }),
            Self::UniStr(v) => v.iter().for_each(|b| {
                put_u32(out, len_u32(b.len() + 1));
                out.extend_from_slice(b);
                out.push(0);
            }),
        }
    }
}

/// One named element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    name: String,
    values: Values,
}

impl Element {
    /// The name as received (compare with `eq_ignore_ascii_case`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn values(&self) -> &Values {
        &self.values
    }
}

/// A decoded PACK is malformed. Every variant is the peer's fault: SoftEther
/// refuses the same PACK (or would misparse it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("PACK ends in the middle of an element: the peer sent a truncated PACK")]
    Truncated,
    #[error(
        "PACK claims {count} elements, more than the {max} allowed or than its bytes can hold"
    )]
    TooManyElements { count: u32, max: u32 },
    #[error("PACK element claims {count} values, more than the {max} allowed or than its bytes can hold")]
    TooManyValues { count: u32, max: u32 },
    #[error("PACK value of {len} bytes exceeds the limit of {max}")]
    ValueTooLong { len: u32, max: u32 },
    #[error("PACK element with an empty name")]
    EmptyName,
    #[error("PACK element name of {0} bytes exceeds the limit of {MAX_NAME_LEN}")]
    NameTooLong(usize),
    #[error("PACK element name is not UTF-8")]
    NameNotUtf8,
    #[error("PACK element {index} repeats an earlier name (names are case-insensitive)")]
    DuplicateName { index: usize },
    #[error("PACK element with no values")]
    NoValues,
    #[error("PACK element of unknown type {0}")]
    UnknownType(u32),
    #[error("{0} bytes after the end of the PACK")]
    TrailingBytes(usize),
}

/// A PACK: elements in the order they were decoded or added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pack {
    elements: Vec<Element>,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PackError> {
        if n > self.buf.len() {
            return Err(PackError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, PackError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, PackError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn sized(&mut self) -> Result<&'a [u8], PackError> {
        let len = self.u32()?;
        if len > MAX_VALUE_SIZE {
            return Err(PackError::ValueTooLong {
                len,
                max: MAX_VALUE_SIZE,
            });
        }
        self.take(len as usize)
    }

    fn left(&self) -> usize {
        self.buf.len()
    }
}

/// The fewest bytes an element takes: name length, a 1-byte name, type,
/// count, one 4-byte value.
const MIN_ELEMENT_LEN: usize = 4 + 1 + 4 + 4 + 4;

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A length this program is about to write; over 4 GiB is a bug of the caller.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("a PACK value larger than 4 GiB")
}

impl Pack {
    /// An empty PACK.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a whole PACK (an HTTP body: the caller has already bounded
    /// its size). Trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Pack, PackError> {
        let mut r = Reader { buf: bytes };
        let count = r.u32()?;
        // Each element takes at least MIN_ELEMENT_LEN bytes: a count larger
        // than the input can hold is refused before anything is reserved.
        if count > MAX_ELEMENTS || count as usize > r.left() / MIN_ELEMENT_LEN {
            return Err(PackError::TooManyElements {
                count,
                max: MAX_ELEMENTS.min(saturating_u32(r.left() / MIN_ELEMENT_LEN)),
            });
        }
        let mut elements = Vec::with_capacity(count as usize);
        let mut seen = HashSet::with_capacity(count as usize);
        for index in 0..count as usize {
            let element = Self::decode_element(&mut r)?;
            if !seen.insert(element.name.to_ascii_lowercase()) {
                return Err(PackError::DuplicateName { index });
            }
            elements.push(element);
        }
        if r.left() != 0 {
            return Err(PackError::TrailingBytes(r.left()));
        }
        Ok(Pack { elements })
    }

    fn decode_element(r: &mut Reader<'_>) -> Result<Element, PackError> {
        // The length field counts a NUL that is not sent.
        let name_len = match r.u32()? {
            0 | 1 => return Err(PackError::EmptyName),
            n => n as usize - 1,
        };
        if name_len > MAX_NAME_LEN {
            return Err(PackError::NameTooLong(name_len));
        }
        let name = std::str::from_utf8(r.take(name_len)?)
            .map_err(|_| PackError::NameNotUtf8)?
            .to_owned();
        let raw_type = r.u32()?;
        let ty = ValueType::from_u32(raw_type).ok_or(PackError::UnknownType(raw_type))?;
        let count = r.u32()?;
        if count == 0 {
            return Err(PackError::NoValues);
        }
        if count > MAX_VALUES || count as usize > r.left() / ty.min_wire_len() {
            return Err(PackError::TooManyValues {
                count,
                max: MAX_VALUES.min(saturating_u32(r.left() / ty.min_wire_len())),
            });
        }
        let n = count as usize;
        let values = match ty {
            ValueType::Int => Values::Int((0..n).map(|_| r.u32()).collect::<Result<_, _>>()?),
            ValueType::Int64 => Values::Int64((0..n).map(|_| r.u64()).collect::<Result<_, _>>()?),
            ValueType::Data => Values::Data(
                (0..n)
                    .map(|_| r.sized().map(<[u8]>::to_vec))
                    .collect::<Result<_, _>>()?,
            ),
            ValueType::Str => Values::Str(
                (0..n)
                    .map(|_| r.sized().map(<[u8]>::to_vec))
                    .collect::<Result<_, _>>()?,
            ),
            ValueType::UniStr => Values::UniStr(
                (0..n)
                    .map(|_| {
                        // The size counts a trailing NUL; SoftEther reads the
                        // string up to the first NUL (or the end).
                        r.sized().map(|b| {
                            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                            b[..end].to_vec()
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Element { name, values })
    }

    /// The exact size [`Pack::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        4 + self
            .elements
            .iter()
            .map(|e| 4 + e.name.len() + 4 + 4 + e.values.encoded_len())
            .sum::<usize>()
    }

    /// Appends the PACK to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        put_u32(out, len_u32(self.elements.len()));
        for e in &self.elements {
            put_u32(out, len_u32(e.name.len() + 1));
            out.extend_from_slice(e.name.as_bytes());
            put_u32(out, e.values.value_type() as u32);
            put_u32(out, len_u32(e.values.len()));
            e.values.encode(out);
        }
    }

    /// The PACK as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// The elements in order.
    pub fn elements(&self) -> &[Element] {
        &self.elements
    }

    /// The element of that name, case-insensitively.
    pub fn get(&self, name: &str) -> Option<&Element> {
        self.elements
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
    }

    /// All values of an INT element.
    pub fn get_ints(&self, name: &str) -> Option<&[u32]> {
        match self.get(name)?.values() {
            Values::Int(v) => Some(v),
            _ => None,
        }
    }

    /// The first value of an INT element (`None` if absent or of another type).
    pub fn get_int(&self, name: &str) -> Option<u32> {
        self.get_ints(name)?.first().copied()
    }

    /// The first value of an INT64 element.
    pub fn get_int64(&self, name: &str) -> Option<u64> {
        match self.get(name)?.values() {
            Values::Int64(v) => v.first().copied(),
            _ => None,
        }
    }

    /// An INT read as a bool: any non-zero value is true, as SoftEther reads it.
    pub fn get_bool(&self, name: &str) -> Option<bool> {
        self.get_int(name).map(|v| v != 0)
    }

    /// The first value of a DATA element.
    pub fn get_data(&self, name: &str) -> Option<&[u8]> {
        match self.get(name)?.values() {
            Values::Data(v) => v.first().map(Vec::as_slice),
            _ => None,
        }
    }

    /// The first value of a STR element, trimmed of spaces and tabs as
    /// SoftEther trims; `None` if absent, of another type, or not UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.get(name)?.values() {
            Values::Str(v) => v.first().and_then(|b| trimmed_utf8(b)),
            _ => None,
        }
    }

    /// The first value of a UNISTR element, trimmed like [`Pack::get_str`].
    pub fn get_unistr(&self, name: &str) -> Option<&str> {
        match self.get(name)?.values() {
            Values::UniStr(v) => v.first().and_then(|b| trimmed_utf8(b)),
            _ => None,
        }
    }

    /// Sets an element, replacing one of the same name (case-insensitively):
    /// a PACK with two such names is invalid, so adding twice must not
    /// produce one.
    ///
    /// # Panics
    ///
    /// If `name` is empty or longer than [`MAX_NAME_LEN`], or `values` is
    /// empty: names and value lists come from this program, not the peer.
    pub fn set(&mut self, name: &str, values: Values) -> &mut Self {
        assert!(
            !name.is_empty() && name.len() <= MAX_NAME_LEN,
            "PACK element name {name:?} must be 1 to {MAX_NAME_LEN} bytes"
        );
        assert!(!values.is_empty(), "PACK element {name:?} with no values");
        match self
            .elements
            .iter_mut()
            .find(|e| e.name.eq_ignore_ascii_case(name))
        {
            Some(e) => {
                e.name = name.to_owned();
                e.values = values;
            }
            None => self.elements.push(Element {
                name: name.to_owned(),
                values,
            }),
        }
        self
    }

    /// Removes the element of that name, if any.
    pub fn remove(&mut self, name: &str) -> Option<Element> {
        let i = self
            .elements
            .iter()
            .position(|e| e.name.eq_ignore_ascii_case(name))?;
        Some(self.elements.remove(i))
    }

    /// Sets an INT element with one value.
    pub fn add_int(&mut self, name: &str, v: u32) -> &mut Self {
        self.set(name, Values::Int(vec![v]))
    }

    /// Sets an INT element with several values (an array).
    pub fn add_ints(&mut self, name: &str, v: &[u32]) -> &mut Self {
        self.set(name, Values::Int(v.to_vec()))
    }

    /// Sets an INT64 element.
    pub fn add_int64(&mut self, name: &str, v: u64) -> &mut Self {
        self.set(name, Values::Int64(vec![v]))
    }

    /// Sets a bool (INT 0/1).
    pub fn add_bool(&mut self, name: &str, v: bool) -> &mut Self {
        self.add_int(name, u32::from(v))
    }

    /// Sets a DATA element.
    pub fn add_data(&mut self, name: &str, v: &[u8]) -> &mut Self {
        self.set(name, Values::Data(vec![v.to_vec()]))
    }

    /// Sets a STR element.
    pub fn add_str(&mut self, name: &str, v: &str) -> &mut Self {
        self.set(name, Values::Str(vec![v.as_bytes().to_vec()]))
    }

    /// Sets a UNISTR element (the NUL is added on the wire).
    pub fn add_unistr(&mut self, name: &str, v: &str) -> &mut Self {
        self.set(name, Values::UniStr(vec![v.as_bytes().to_vec()]))
    }
}

/// SoftEther's `Trim`: spaces and tabs at both ends.
fn trimmed_utf8(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b)
        .ok()
        .map(|s| s.trim_matches(|c| c == ' ' || c == '\t'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // The four examples of PROTOCOL-NOTES.md §4.3, from the encoder that
    // interoperated with the real binaries.
    const ERROR_9: &str = "00000002 00000006 6572726f72 00000000 00000001 00000009 \
        00000011 6e6f5f736176655f70617373776f7264 00000000 00000001 00000000";
    const METHOD_LOGIN: &str =
        "00000001 00000007 6d6574686f64 00000002 00000001 00000005 6c6f67696e";
    const UNISTR_NIHON: &str = "00000001 00000002 75 00000003 00000001 00000007 e697a5e69cac00";
    const PORT_ARRAY: &str = "00000001 00000005 506f7274 00000000 00000002 000001bb 000015b3";

    #[test]
    fn notes_examples_encode_byte_for_byte() {
        let mut p = Pack::new();
        p.add_int("error", 9).add_int("no_save_password", 0);
        assert_eq!(p.to_bytes(), hex(ERROR_9));
        let mut p = Pack::new();
        p.add_str("method", "login");
        assert_eq!(p.to_bytes(), hex(METHOD_LOGIN));
        let mut p = Pack::new();
        p.add_unistr("u", "日本");
        assert_eq!(p.to_bytes(), hex(UNISTR_NIHON));
        let mut p = Pack::new();
        p.add_ints("Port", &[443, 5555]);
        assert_eq!(p.to_bytes(), hex(PORT_ARRAY));
        assert_eq!(p.encoded_len(), hex(PORT_ARRAY).len());
    }

    #[test]
    fn notes_examples_decode() {
        let p = Pack::decode(&hex(ERROR_9)).unwrap();
        assert_eq!(p.get_int("error"), Some(9));
        assert_eq!(p.get_int("ERROR"), Some(9), "names are case-insensitive");
        assert_eq!(p.get_bool("no_save_password"), Some(false));
        assert_eq!(p.get_int64("error"), None, "lookups are type-checked");
        let p = Pack::decode(&hex(METHOD_LOGIN)).unwrap();
        assert_eq!(p.get_str("method"), Some("login"));
        assert_eq!(p.get_unistr("method"), None);
        let p = Pack::decode(&hex(UNISTR_NIHON)).unwrap();
        assert_eq!(p.get_unistr("u"), Some("日本"));
        let p = Pack::decode(&hex(PORT_ARRAY)).unwrap();
        assert_eq!(p.get_ints("Port"), Some(&[443, 5555][..]));
        assert_eq!(p.get_int("port"), Some(443));
    }

    #[test]
    fn strings_are_trimmed_on_read_only() {
        let mut p = Pack::new();
        p.add_str("hubname", " \tVPN \t").add_str("bad", "x");
        p.set("bad", Values::Str(vec![vec![0xff, 0xfe]]));
        let p = Pack::decode(&p.to_bytes()).unwrap();
        assert_eq!(p.get_str("hubname"), Some("VPN"));
        assert_eq!(p.get_str("bad"), None, "not UTF-8");
        let Values::Str(raw) = p.get("hubname").unwrap().values() else {
            panic!()
        };
        assert_eq!(raw[0], b" \tVPN \t", "the codec itself keeps the bytes");
    }

    #[test]
    fn set_replaces_same_name_any_case() {
        let mut p = Pack::new();
        p.add_int("pencore", 1).add_data("PENCORE", b"xy");
        assert_eq!(p.elements().len(), 1);
        assert_eq!(p.get_data("pencore"), Some(&b"xy"[..]));
        assert!(p.remove("Pencore").is_some());
        assert_eq!(p.encoded_len(), 4);
    }

    #[test]
    fn int64_and_unistr_without_nul() {
        let mut p = Pack::new();
        p.add_int64("big", 0x0102_0304_0506_0708);
        let b = p.to_bytes();
        assert_eq!(&b[b.len() - 8..], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            Pack::decode(&b).unwrap().get_int64("big"),
            Some(0x0102_0304_0506_0708)
        );
        // A UNISTR whose size does not count a NUL still reads (SoftEther
        // reads up to the first NUL or the end).
        let raw = hex("00000001 00000002 75 00000003 00000001 00000002 6869");
        assert_eq!(Pack::decode(&raw).unwrap().get_unistr("u"), Some("hi"));
    }

    /// A PACK with one element whose header fields are given.
    fn one(name_len_field: u32, name: &[u8], ty: u32, count: u32, rest: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 1];
        b.extend_from_slice(&name_len_field.to_be_bytes());
        b.extend_from_slice(name);
        b.extend_from_slice(&ty.to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(rest);
        b
    }

    #[test]
    fn hostile_inputs_are_refused_without_allocating_what_they_claim() {
        use PackError::*;
        let d = |b: &[u8]| Pack::decode(b).unwrap_err();
        assert_eq!(d(&[]), Truncated);
        assert_eq!(d(&[0, 0, 0]), Truncated);
        // Four billion elements in 4 bytes.
        assert!(matches!(
            d(&[0xff; 4]),
            TooManyElements {
                count: u32::MAX,
                ..
            }
        ));
        // Two elements claimed, room for one.
        let mut b = one(2, b"a", 0, 1, &[0, 0, 0, 7]);
        b[3] = 2;
        assert!(matches!(d(&b), TooManyElements { count: 2, .. }));
        // A value count the remaining bytes cannot hold.
        assert!(matches!(
            d(&one(2, b"a", 0, 0x4000_0000, &[0; 8])),
            TooManyValues {
                count: 0x4000_0000,
                ..
            }
        ));
        assert!(matches!(
            d(&one(2, b"a", 4, 2, &[0; 12])),
            TooManyValues { count: 2, .. }
        ));
        // A DATA length beyond the input, and beyond SoftEther's limit.
        assert_eq!(d(&one(2, b"a", 1, 1, &[0, 0, 0x10, 0, 1, 2])), Truncated);
        assert!(matches!(
            d(&one(2, b"a", 1, 1, &[0xff; 4])),
            ValueTooLong { .. }
        ));
        assert_eq!(d(&one(0, b"", 1, 1, &[0, 0, 0, 1, 9])), EmptyName);
        assert_eq!(d(&one(1, b"", 1, 1, &[0, 0, 0, 1, 9])), EmptyName);
        assert_eq!(d(&one(65, &[b'a'; 64], 0, 1, &[0; 4])), NameTooLong(64));
        assert_eq!(
            d(&one(0xffff_ffff, b"a", 0, 1, &[0; 4])),
            NameTooLong(0xffff_fffe)
        );
        assert_eq!(d(&one(3, &[0xc3, 0x28], 0, 1, &[0; 4])), NameNotUtf8);
        assert_eq!(d(&one(2, b"a", 0, 0, &[0; 4])), NoValues);
        assert_eq!(d(&one(2, b"a", 5, 1, &[0; 4])), UnknownType(5));
        assert_eq!(d(&one(2, b"a", 0, 1, &[0; 6])), TrailingBytes(2));
        // Names that differ only by case.
        let mut b = one(2, b"a", 0, 1, &[0; 4]);
        b[3] = 2;
        b.extend_from_slice(&one(2, b"A", 0, 1, &[0; 4])[4..]);
        assert_eq!(d(&b), DuplicateName { index: 1 });
    }

    fn values() -> impl Strategy<Value = Values> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..40);
        // UNISTR cannot carry a NUL (the reader stops there).
        let text = || "[^\u{0}]{0,12}".prop_map(String::into_bytes);
        prop_oneof![
            proptest::collection::vec(any::<u32>(), 1..4).prop_map(Values::Int),
            proptest::collection::vec(any::<u64>(), 1..4).prop_map(Values::Int64),
            proptest::collection::vec(bytes(), 1..4).prop_map(Values::Data),
            proptest::collection::vec(bytes(), 1..4).prop_map(Values::Str),
            proptest::collection::vec(text(), 1..4).prop_map(Values::UniStr),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(elements in proptest::collection::vec(("[a-zA-Z_:@0-9]{1,63}", values()), 0..12)) {
            let mut p = Pack::new();
            for (name, v) in elements {
                p.set(&name, v);
            }
            let bytes = p.to_bytes();
            prop_assert_eq!(bytes.len(), p.encoded_len());
            let back = Pack::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &p);
            prop_assert_eq!(back.to_bytes(), bytes);
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(p) = Pack::decode(&bytes) {
                prop_assert_eq!(Pack::decode(&p.to_bytes()).unwrap(), p);
            }
        }

        #[test]
        fn every_truncation_fails(cut in 0usize..200) {
            let mut p = Pack::new();
            p.add_str("method", "login").add_int("authtype", 1)
                .add_data("secure_password", &[7; 20]).add_unistr("u", "日本")
                .add_int64("x", 5);
            let bytes = p.to_bytes();
            let cut = cut % bytes.len();
            prop_assert!(Pack::decode(&bytes[..cut]).is_err());
        }
    }
}
