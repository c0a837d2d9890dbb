//! Collections read with a bound: parsing a report stops at the first entry past it, so a
//! hostile body cannot make the service build more than the limits allow before
//! `AgentReport::validate` would refuse it anyway. The bounds are those of
//! [`ReportLimits::default`](crate::ReportLimits), which the service enforces.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Error, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A list of at most `N` entries.
pub fn vec<'de, D, T, const N: usize>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T, const N: usize>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for Bounded<T, N> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {N} entries")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N).min(1024));
            while let Some(item) = seq.next_element()? {
                if out.len() == N {
                    return Err(A::Error::custom(format!("more than {N} entries")));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_seq(Bounded::<T, N>(PhantomData))
}

/// A map of at most `N` entries.
pub fn map<'de, D, V, const N: usize>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Bounded<V, const N: usize>(PhantomData<V>);
    impl<'de, V: Deserialize<'de>, const N: usize> Visitor<'de> for Bounded<V, N> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a map of at most {N} entries")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry()? {
                if out.len() == N {
                    return Err(A::Error::custom(format!("more than {N} entries")));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Bounded::<V, N>(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Sample {
        #[serde(deserialize_with = "vec::<_, _, 2>")]
        list: Vec<u8>,
        #[serde(deserialize_with = "map::<_, _, 1>")]
        tags: BTreeMap<String, String>,
    }

    #[test]
    fn bounds_hold_while_parsing() {
        let ok: Sample = serde_json::from_str(r#"{"list":[1,2],"tags":{"a":"b"}}"#).expect("ok");
        assert_eq!(ok.list, vec![1, 2]);
        assert_eq!(ok.tags.len(), 1);
        let long = serde_json::from_str::<Sample>(r#"{"list":[1,2,3],"tags":{}}"#);
        assert!(long
            .expect_err("3 > 2")
            .to_string()
            .contains("more than 2 entries"));
        let wide = serde_json::from_str::<Sample>(r#"{"list":[],"tags":{"a":"1","b":"2"}}"#);
        assert!(wide
            .expect_err("2 > 1")
            .to_string()
            .contains("more than 1 entries"));
    }
}
