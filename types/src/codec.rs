//! Canonical binary encoding helpers.
//!
//! Every field of a wire type decodes with no external configuration (`Cfg = ()`), so that
//! the bounds an attacker could abuse (vector lengths, string lengths) live in the type
//! itself: [`BoundedVec`], [`BoundedBytes`] and [`BoundedString`] carry their maximum as a
//! const generic and refuse a longer length prefix before allocating anything.

use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{EncodeSize, Error as CodecError, RangeCfg, Read, Write};
use serde::{Deserialize, Serialize};

/// Implements commonware-codec `Write`, `EncodeSize` and `Read` for a struct by encoding its
/// fields in declaration order. Every field type must decode with `Cfg = ()`.
#[macro_export]
macro_rules! codec_struct {
    ($name:ident { $($field:ident),* $(,)? }) => {
        impl ::commonware_codec::Write for $name {
            fn write(&self, buf: &mut impl ::bytes::BufMut) {
                $( ::commonware_codec::Write::write(&self.$field, buf); )*
            }
        }
        impl ::commonware_codec::EncodeSize for $name {
            fn encode_size(&self) -> usize {
                0 $( + ::commonware_codec::EncodeSize::encode_size(&self.$field) )*
            }
        }
        impl ::commonware_codec::Read for $name {
            type Cfg = ();
            fn read_cfg(
                buf: &mut impl ::commonware_codec::Buf,
                _: &(),
            ) -> ::core::result::Result<Self, ::commonware_codec::Error> {
                Ok(Self { $( $field: ::commonware_codec::Read::read_cfg(buf, &())?, )* })
            }
        }
    };
}

/// Implements the codec for an enum whose variants each hold exactly one value, tagged by a
/// one-byte discriminant. Unknown tags are a decode error naming the enum.
#[macro_export]
macro_rules! codec_enum {
    ($name:ident { $($tag:literal => $variant:ident),* $(,)? }) => {
        impl ::commonware_codec::Write for $name {
            fn write(&self, buf: &mut impl ::bytes::BufMut) {
                match self {
                    $( Self::$variant(inner) => {
                        ::commonware_codec::Write::write(&($tag as u8), buf);
                        ::commonware_codec::Write::write(inner, buf);
                    } )*
                }
            }
        }
        impl ::commonware_codec::EncodeSize for $name {
            fn encode_size(&self) -> usize {
                1 + match self {
                    $( Self::$variant(inner) => ::commonware_codec::EncodeSize::encode_size(inner), )*
                }
            }
        }
        impl ::commonware_codec::Read for $name {
            type Cfg = ();
            fn read_cfg(
                buf: &mut impl ::commonware_codec::Buf,
                _: &(),
            ) -> ::core::result::Result<Self, ::commonware_codec::Error> {
                let tag = <u8 as ::commonware_codec::Read>::read_cfg(buf, &())?;
                match tag {
                    $( $tag => Ok(Self::$variant(::commonware_codec::Read::read_cfg(buf, &())?)), )*
                    other => Err(::commonware_codec::Error::InvalidEnum(other)),
                }
            }
        }
    };
}

/// Implements the codec for a field-less enum as one byte.
#[macro_export]
macro_rules! codec_unit_enum {
    ($name:ident { $($tag:literal => $variant:ident),* $(,)? }) => {
        impl ::commonware_codec::Write for $name {
            fn write(&self, buf: &mut impl ::bytes::BufMut) {
                let tag: u8 = match self { $( Self::$variant => $tag, )* };
                ::commonware_codec::Write::write(&tag, buf);
            }
        }
        impl ::commonware_codec::FixedSize for $name {
            const SIZE: usize = 1;
        }
        impl ::commonware_codec::Read for $name {
            type Cfg = ();
            fn read_cfg(
                buf: &mut impl ::commonware_codec::Buf,
                _: &(),
            ) -> ::core::result::Result<Self, ::commonware_codec::Error> {
                match <u8 as ::commonware_codec::Read>::read_cfg(buf, &())? {
                    $( $tag => Ok(Self::$variant), )*
                    other => Err(::commonware_codec::Error::InvalidEnum(other)),
                }
            }
        }
    };
}

/// A vector of at most `MAX` elements.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BoundedVec<T, const MAX: usize>(pub Vec<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for BoundedVec<T, MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<T>::deserialize(d)?;
        let len = items.len();
        Self::new(items)
            .ok_or_else(|| serde::de::Error::custom(format!("{len} items, at most {MAX} allowed")))
    }
}

impl<T, const MAX: usize> Default for BoundedVec<T, MAX> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    /// Wraps `items`, or returns `None` when there are more than `MAX`.
    pub fn new(items: Vec<T>) -> Option<Self> {
        (items.len() <= MAX).then_some(Self(items))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
}

impl<T: Write, const MAX: usize> Write for BoundedVec<T, MAX> {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}
impl<T: EncodeSize, const MAX: usize> EncodeSize for BoundedVec<T, MAX> {
    fn encode_size(&self) -> usize {
        self.0.encode_size()
    }
}
impl<T: Read<Cfg = ()>, const MAX: usize> Read for BoundedVec<T, MAX> {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let cfg: (RangeCfg<usize>, ()) = (RangeCfg::new(0..=MAX), ());
        Ok(Self(Vec::<T>::read_cfg(buf, &cfg)?))
    }
}

/// Opaque bytes of at most `MAX` length, hex in JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundedBytes<const MAX: usize>(pub Vec<u8>);

impl<const MAX: usize> BoundedBytes<MAX> {
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() <= MAX).then_some(Self(bytes))
    }
}
impl<const MAX: usize> Write for BoundedBytes<MAX> {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}
impl<const MAX: usize> EncodeSize for BoundedBytes<MAX> {
    fn encode_size(&self) -> usize {
        self.0.encode_size()
    }
}
impl<const MAX: usize> Read for BoundedBytes<MAX> {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let cfg: (RangeCfg<usize>, ()) = (RangeCfg::new(0..=MAX), ());
        Ok(Self(Vec::<u8>::read_cfg(buf, &cfg)?))
    }
}
impl<const MAX: usize> Serialize for BoundedBytes<MAX> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}
impl<'de, const MAX: usize> Deserialize<'de> for BoundedBytes<MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bytes = hex::decode(&s).map_err(serde::de::Error::custom)?;
        Self::new(bytes).ok_or_else(|| serde::de::Error::custom(format!("more than {MAX} bytes")))
    }
}

/// A UTF-8 string of at most `MAX` bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BoundedString<const MAX: usize>(String);

impl<const MAX: usize> BoundedString<MAX> {
    /// Wraps `s`, or returns `None` when it is longer than `MAX` bytes.
    pub fn new(s: impl Into<String>) -> Option<Self> {
        let s = s.into();
        (s.len() <= MAX).then_some(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl<const MAX: usize> std::fmt::Display for BoundedString<MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl<const MAX: usize> Write for BoundedString<MAX> {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.as_bytes().write(buf);
    }
}
impl<const MAX: usize> EncodeSize for BoundedString<MAX> {
    fn encode_size(&self) -> usize {
        self.0.as_bytes().encode_size()
    }
}
impl<const MAX: usize> Read for BoundedString<MAX> {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let cfg: (RangeCfg<usize>, ()) = (RangeCfg::new(0..=MAX), ());
        let bytes = Vec::<u8>::read_cfg(buf, &cfg)?;
        String::from_utf8(bytes)
            .map(Self)
            .map_err(|_| CodecError::Invalid("BoundedString", "not UTF-8"))
    }
}
impl<'de, const MAX: usize> Deserialize<'de> for BoundedString<MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let len = s.len();
        Self::new(s).ok_or_else(|| {
            serde::de::Error::custom(format!("string of {len} bytes, at most {MAX} allowed"))
        })
    }
}
