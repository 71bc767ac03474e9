//! Reading the site (and the method and tool name) out of a JSON-RPC body, once, strictly.
//!
//! The body is parsed in one pass along the configured JSON pointers only; everything else is skipped (still
//! checked to be JSON). The rules close the gaps through which the application's own parser could read another
//! site than the one checked here:
//! - the body is one JSON object (batch arrays are refused), with nothing after it;
//! - on the way to every value read (`method`, `params`, `params.name`, `params.arguments`, the site key) a key
//!   may appear once: a duplicate, or a key that differs only in ASCII case (`cloudid` beside or instead of
//!   `cloudId`), refuses the body;
//! - keys are compared decoded (`"cloud\u0049d"` is `cloudId`);
//! - nesting is bounded by `serde_json`'s recursion limit.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, Deserialize, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use portcullis_core::ConfigError;

/// Why a body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Not one JSON object (syntax, trailing data, too deep, not an object).
    NotAnObject,
    /// A JSON-RPC batch (an array at the top).
    Batch,
    /// A key on the way to a value read appears twice, or in another case.
    AmbiguousKey,
}

/// A parsed JSON pointer (RFC 6901).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pointer(Vec<String>);

impl Pointer {
    pub(crate) fn parse(pointer: &str) -> Result<Self, ConfigError> {
        let Some(rest) = pointer.strip_prefix('/') else {
            return Err(ConfigError::new(
                "body_pointer",
                "a JSON pointer must start with '/'",
            ));
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            if raw.is_empty() {
                return Err(ConfigError::new(
                    "body_pointer",
                    "a JSON pointer must not have empty segments",
                ));
            }
            if raw.replace("~0", "").replace("~1", "").contains('~') {
                return Err(ConfigError::new(
                    "body_pointer",
                    "'~' must be escaped as ~0 or ~1",
                ));
            }
            segments.push(raw.replace("~1", "/").replace("~0", "~"));
        }
        Ok(Self(segments))
    }
}

/// What to read: a trie of keys, whose leaves are numbered slots.
#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    root: Node,
    slots: usize,
}

#[derive(Clone, Debug, Default)]
struct Node {
    children: Vec<(String, Node)>,
    slot: Option<usize>,
}

/// A value read from a slot.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Found<'a> {
    /// A JSON string, borrowed from the body unless it had escapes.
    Str(Cow<'a, str>),
    /// A JSON number.
    Num(serde_json::Number),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An array or an object.
    Other,
}

impl Found<'_> {
    /// The string, if the value is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(value) => Some(value),
            _ => None,
        }
    }
}

/// Slot numbers of the fixed reads.
pub(crate) const METHOD: usize = 0;
/// `params.name`: the tool of `tools/call`, the prompt of `prompts/get`.
pub(crate) const NAME: usize = 1;
/// `params.uri`: the resource of `resources/read`.
pub(crate) const URI: usize = 2;
/// `params._meta["io.modelcontextprotocol/protocolVersion"]` (MCP 2026-07-28).
pub(crate) const VERSION: usize = 3;
/// `id`.
pub(crate) const ID: usize = 4;
/// `params.taskId`: the task of `tasks/get`, `tasks/update` and `tasks/cancel`.
pub(crate) const TASK_ID: usize = 5;

impl Plan {
    /// A plan that reads `method`, `params.name`, `params.uri`, the protocol version in `params._meta`, `id` and
    /// `params.taskId`, plus the given pointers (slots 6, 7, ...).
    pub(crate) fn new(pointers: &[Pointer]) -> Self {
        let mut plan = Self::default();
        plan.add(&["method".to_owned()]);
        plan.add(&["params".to_owned(), "name".to_owned()]);
        plan.add(&["params".to_owned(), "uri".to_owned()]);
        plan.add(&[
            "params".to_owned(),
            "_meta".to_owned(),
            "io.modelcontextprotocol/protocolVersion".to_owned(),
        ]);
        plan.add(&["id".to_owned()]);
        plan.add(&["params".to_owned(), "taskId".to_owned()]);
        for pointer in pointers {
            plan.add(&pointer.0);
        }
        plan
    }

    fn add(&mut self, path: &[String]) -> usize {
        // Slot numbers are handed out in order; a path added twice keeps its first number.
        let slot = self.slots;
        self.slots += 1;
        let mut node = &mut self.root;
        for segment in path {
            let at = match node.children.iter().position(|(name, _)| name == segment) {
                Some(at) => at,
                None => {
                    node.children.push((segment.clone(), Node::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[at].1;
        }
        // Two pointers to the same place share the first one's slot (see `slot_of`).
        *node.slot.get_or_insert(slot)
    }

    /// Reads the body. `found[i]` is the value of slot `i`, if present.
    pub(crate) fn read<'b>(&self, body: &'b [u8]) -> Result<Vec<Option<Found<'b>>>, BodyError> {
        let mut found = vec![None; self.slots];
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let seed = NodeSeed {
            node: &self.root,
            found: &mut found,
            root: true,
        };
        seed.deserialize(&mut deserializer).map_err(classify)?;
        deserializer.end().map_err(|_| BodyError::NotAnObject)?;
        Ok(found)
    }

    /// The slot that holds the value at `pointer`; pointers to the same place share one.
    pub(crate) fn slot_of(&self, pointer: &Pointer) -> Option<usize> {
        let mut node = &self.root;
        for segment in &pointer.0 {
            node = &node.children.iter().find(|(name, _)| name == segment)?.1;
        }
        node.slot
    }
}

/// Whether `key` equals `name` under case folding as lenient parsers do it: ASCII case, and the non-ASCII
/// characters that fold to an ASCII letter (`ſ` U+017F to `s`, the Kelvin sign U+212A to `k`), as Go's
/// `encoding/json` (`EqualFold`) and other case-insensitive decoders match field names.
fn folds_to(key: &str, name: &str) -> bool {
    let fold = |c: char| -> char {
        if c.is_ascii() {
            return c.to_ascii_lowercase();
        }
        let lower = c.to_lowercase().next().unwrap_or(c);
        if lower.is_ascii() {
            return lower;
        }
        let upper = c.to_uppercase().next().unwrap_or(c);
        if upper.is_ascii() {
            upper.to_ascii_lowercase()
        } else {
            c
        }
    };
    key.chars().map(fold).eq(name.chars().map(fold))
}

fn classify(err: serde_json::Error) -> BodyError {
    let text = err.to_string();
    if text.starts_with(AMBIGUOUS) {
        BodyError::AmbiguousKey
    } else if text.starts_with(BATCH) {
        BodyError::Batch
    } else {
        BodyError::NotAnObject
    }
}

const AMBIGUOUS: &str = "portcullis: ambiguous key";
const BATCH: &str = "portcullis: batch";

struct NodeSeed<'a, 'f, 'de> {
    node: &'a Node,
    found: &'f mut Vec<Option<Found<'de>>>,
    root: bool,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Seen::new(self.node.children.len());
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let exact = self
                .node
                .children
                .iter()
                .position(|(name, _)| *name == *key);
            let folded = self
                .node
                .children
                .iter()
                .any(|(name, _)| folds_to(&key, name));
            match exact {
                Some(at) => {
                    if seen.mark(at) {
                        return Err(de::Error::custom(AMBIGUOUS));
                    }
                    let child = &self.node.children[at].1;
                    if let Some(slot) = child.slot
                        && child.children.is_empty()
                    {
                        self.found[slot] = Some(map.next_value_seed(LeafSeed)?);
                    } else {
                        map.next_value_seed(NodeSeed {
                            node: child,
                            found: self.found,
                            root: false,
                        })?;
                    }
                }
                None if folded => return Err(de::Error::custom(AMBIGUOUS)),
                None => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.root {
            // A JSON-RPC batch: refused whole (MCP 2025-06-18 removed batching).
            return Err(de::Error::custom(BATCH));
        }
        // A pointer may index into an array: `/params/arguments/sites/0`.
        let mut index = 0usize;
        loop {
            let child = self.node.children.iter().find(|(name, _)| {
                name.parse::<usize>().ok() == Some(index) && *name == index.to_string()
            });
            let more = match child {
                Some((_, child)) if child.slot.is_some() && child.children.is_empty() => {
                    match seq.next_element_seed(LeafSeed)? {
                        Some(value) => {
                            if let Some(slot) = child.slot {
                                self.found[slot] = Some(value);
                            }
                            true
                        }
                        None => false,
                    }
                }
                Some((_, child)) => seq
                    .next_element_seed(NodeSeed {
                        node: child,
                        found: self.found,
                        root: false,
                    })?
                    .is_some(),
                None => seq.next_element::<Skip>()?.is_some(),
            };
            if !more {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
}

impl NodeSeed<'_, '_, '_> {
    fn scalar<E: de::Error>(self) -> Result<(), E> {
        if self.root {
            Err(E::custom("not an object"))
        } else {
            // A scalar where an object was expected on the way to a value: the value is simply absent.
            Ok(())
        }
    }
}

/// The keys of an object already met, to refuse a key given twice: bits for the usual handful of keys in a plan,
/// a vector beyond 64.
enum Seen {
    Bits(u64),
    Many(Vec<bool>),
}

impl Seen {
    fn new(keys: usize) -> Self {
        if keys <= 64 {
            Self::Bits(0)
        } else {
            Self::Many(vec![false; keys])
        }
    }

    /// Marks key `at` as met; whether it had been met before.
    fn mark(&mut self, at: usize) -> bool {
        match self {
            Self::Bits(bits) => {
                let bit = 1u64 << at;
                let before = *bits & bit != 0;
                *bits |= bit;
                before
            }
            Self::Many(seen) => std::mem::replace(&mut seen[at], true),
        }
    }
}

/// Skips a value, still checking that it is JSON. Unlike `serde::de::IgnoredAny` (which `serde_json` skips
/// without a depth limit), nested arrays and objects go through `deserialize_any`, so `serde_json`'s recursion
/// limit (128) bounds the nesting of the whole body.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// Reads a leaf: a string, or notes that it is something else.
struct LeafSeed;

impl<'de> DeserializeSeed<'de> for LeafSeed {
    type Value = Found<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Found<'de>, D::Error> {
        deserializer.deserialize_any(LeafVisitor)
    }
}

struct LeafVisitor;

impl<'de> Visitor<'de> for LeafVisitor {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Found<'de>, E> {
        Ok(Found::Str(Cow::Borrowed(value)))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Found<'de>, E> {
        Ok(Found::Str(Cow::Owned(value.to_owned())))
    }
    fn visit_string<E: de::Error>(self, value: String) -> Result<Found<'de>, E> {
        Ok(Found::Str(Cow::Owned(value)))
    }
    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Found<'de>, E> {
        Ok(Found::Bool(value))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Found<'de>, E> {
        Ok(Found::Num(value.into()))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Found<'de>, E> {
        Ok(Found::Num(value.into()))
    }
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Found<'de>, E> {
        // serde_json never yields a non-finite number.
        Ok(serde_json::Number::from_f64(value).map_or(Found::Other, Found::Num))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Found<'de>, E> {
        Ok(Found::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found<'de>, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Found::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Found<'de>, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Found::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> (Plan, usize) {
        let pointer = Pointer::parse("/params/arguments/cloudId").expect("valid");
        let plan = Plan::new(std::slice::from_ref(&pointer));
        let slot = plan.slot_of(&pointer).expect("slot");
        (plan, slot)
    }

    fn site(body: &str) -> Result<Option<Found<'_>>, BodyError> {
        let (plan, slot) = plan();
        plan.read(body.as_bytes()).map(|found| found[slot].clone())
    }

    #[test]
    fn reads_method_tool_and_site_in_one_pass() {
        let (plan, slot) = plan();
        let found = plan
            .read(br#"{"params":{"arguments":{"cloudId":"s1","x":[1,{"cloudId":"no"}]},"name":"t"},"method":"tools/call","id":1}"#)
            .expect("valid");
        assert_eq!(found[METHOD], Some(Found::Str("tools/call".into())));
        assert_eq!(found[NAME], Some(Found::Str("t".into())));
        assert_eq!(found[slot], Some(Found::Str("s1".into())));
    }

    #[test]
    fn plain_strings_are_borrowed_and_escaped_ones_decoded() {
        let (plan, slot) = plan();
        let found = plan
            .read(br#"{"method":"tools/call","params":{"name":"t\u0031","arguments":{"cloudId":"s1"}}}"#)
            .expect("valid");
        assert!(matches!(
            &found[slot],
            Some(Found::Str(Cow::Borrowed("s1")))
        ));
        assert!(matches!(&found[NAME], Some(Found::Str(Cow::Owned(tool))) if tool == "t1"));
    }

    #[test]
    fn a_key_given_twice_is_refused_however_many_keys_the_plan_reads() {
        // More than 64 keys in one object of the plan: the seen-keys record is then a vector, not bits.
        let pointers: Vec<Pointer> = (0..70)
            .map(|i| Pointer::parse(&format!("/params/arguments/k{i}")).expect("valid"))
            .collect();
        let plan = Plan::new(&pointers);
        for key in ["k3", "k69"] {
            let body = format!(r#"{{"params":{{"arguments":{{"{key}":"a","{key}":"b"}}}}}}"#);
            assert_eq!(
                plan.read(body.as_bytes()),
                Err(BodyError::AmbiguousKey),
                "{key}"
            );
        }
        let once = plan
            .read(br#"{"params":{"arguments":{"k69":"a","k3":"b"}}}"#)
            .expect("valid");
        let slot = plan.slot_of(&pointers[69]).expect("slot");
        assert_eq!(found_str(&once[slot]), Some("a"));
    }

    fn found_str<'a>(found: &'a Option<Found<'_>>) -> Option<&'a str> {
        match found {
            Some(Found::Str(value)) => Some(value),
            _ => None,
        }
    }

    #[test]
    fn escaped_keys_are_the_decoded_key() {
        assert_eq!(
            site(r#"{"params":{"arguments":{"cloud\u0049d":"s1"}}}"#),
            Ok(Some(Found::Str("s1".into())))
        );
    }

    #[test]
    fn ambiguous_keys_on_the_path_are_refused() {
        for body in [
            r#"{"params":{"arguments":{"cloudId":"a","cloudId":"b"}}}"#,
            r#"{"params":{"arguments":{"cloudId":"a","cloud\u0049d":"b"}}}"#,
            r#"{"params":{"arguments":{"cloudId":"a","cloudid":"b"}}}"#,
            r#"{"params":{"arguments":{"CLOUDID":"b"}}}"#,
            r#"{"params":{"arguments":{}},"params":{"arguments":{"cloudId":"b"}}}"#,
            r#"{"params":{"arguments":{"cloudId":"a"},"arguments":{}}}"#,
            r#"{"method":"tools/call","method":"initialize"}"#,
            r#"{"Method":"tools/call"}"#,
            r#"{"params":{"name":"a","name":"b"}}"#,
        ] {
            assert_eq!(site(body), Err(BodyError::AmbiguousKey), "{body}");
        }
        // Keys off the path may repeat: they are not read.
        assert!(site(r#"{"params":{"meta":1,"meta":2,"arguments":{"cloudId":"a"}}}"#).is_ok());
    }

    #[test]
    fn non_objects_batches_and_trailing_data_are_refused() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let deep_obj = format!(
            r#"{{"params":{{"arguments":{{"x":{}1{}}}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        for body in [
            "",
            "null",
            "1",
            "\"x\"",
            "{\"method\":\"tools/call\"} {}",
            "{\"method\":\"tools/call\"}x",
            "{\"method\":",
            deep_obj.as_str(),
        ] {
            assert_eq!(site(body), Err(BodyError::NotAnObject), "{body:.40}");
        }
        for batch in ["[{\"method\":\"tools/call\"}]", "[]", " [1]", deep.as_str()] {
            assert_eq!(site(batch), Err(BodyError::Batch), "{batch:.40}");
        }
    }

    #[test]
    fn site_values_of_other_types_are_reported() {
        for (body, found) in [
            (
                r#"{"params":{"arguments":{"cloudId":1}}}"#,
                Found::Num(1.into()),
            ),
            (
                r#"{"params":{"arguments":{"cloudId":-2.5}}}"#,
                Found::Num(serde_json::Number::from_f64(-2.5).expect("finite")),
            ),
            (r#"{"params":{"arguments":{"cloudId":null}}}"#, Found::Null),
            (
                r#"{"params":{"arguments":{"cloudId":["a"]}}}"#,
                Found::Other,
            ),
            (
                r#"{"params":{"arguments":{"cloudId":{"id":"a"}}}}"#,
                Found::Other,
            ),
            (
                r#"{"params":{"arguments":{"cloudId":true}}}"#,
                Found::Bool(true),
            ),
        ] {
            assert_eq!(site(body), Ok(Some(found)), "{body}");
        }
        assert_eq!(site(r#"{"params":{"arguments":"x"}}"#), Ok(None));
    }

    #[test]
    fn pointers_are_parsed_per_rfc_6901() {
        let pointer = Pointer::parse("/a~1b/c~0d").expect("valid");
        assert_eq!(pointer.0, ["a/b", "c~d"]);
        for bad in ["", "a/b", "/a//b", "/a~2"] {
            assert!(Pointer::parse(bad).is_err(), "{bad}");
        }
    }
}
