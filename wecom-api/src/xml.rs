//! The XML WeCom and WeChat send to callbacks: `<xml><Name><![CDATA[v]]></Name>...</xml>`.
//!
//! Nearly every message is flat, but a few events nest (`ScanCodeInfo`, `SendPicsInfo`,
//! `BatchJob`), so an element holds either text or child elements; nothing is dropped. Order is
//! kept, both in the XML and in the JSON rendering (element names as keys; a name repeated
//! among siblings becomes an array), so a CRM reading either sees what WeCom sent.

use std::fmt::Write as _;

use quick_xml::events::Event;
use quick_xml::Reader;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Deeper than any WeCom message; bounds the recursion of hostile input.
const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    #[error("the root element must be <xml>, found <{0}>")]
    WrongRoot(String),
    #[error("element <{0}> mixes text and child elements")]
    Mixed(String),
    #[error("elements nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("a document type declaration is not accepted")]
    DocType,
    #[error("JSON rendering: {0}")]
    Json(String),
}

/// The value of one element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlValue {
    Text(String),
    Children(Vec<(String, XmlValue)>),
}

/// A whole message: the children of `<xml>`, in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XmlMessage {
    pub fields: Vec<(String, XmlValue)>,
}

impl XmlMessage {
    /// A flat message from (name, text) pairs, in that order.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> XmlMessage {
        XmlMessage {
            fields: pairs
                .into_iter()
                .map(|(n, v)| (n.into(), XmlValue::Text(v.into())))
                .collect(),
        }
    }

    /// The text of the first top-level element called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find_map(|(n, v)| match v {
            XmlValue::Text(t) if n == name => Some(t.as_str()),
            _ => None,
        })
    }

    pub fn parse(xml: &str) -> Result<XmlMessage, XmlError> {
        let mut reader = Reader::from_str(xml);
        reader.config_mut().trim_text(false);
        // Everything before the root: a declaration, comments, whitespace.
        loop {
            match next(&mut reader)? {
                Event::Start(e) => {
                    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    if name != "xml" {
                        return Err(XmlError::WrongRoot(name));
                    }
                    break;
                }
                Event::Empty(e) => {
                    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    if name != "xml" {
                        return Err(XmlError::WrongRoot(name));
                    }
                    return trailing(&mut reader).map(|()| XmlMessage::default());
                }
                Event::Text(t) if is_blank(&t) => {}
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::DocType(_) => return Err(XmlError::DocType),
                Event::Eof => return Err(XmlError::Malformed("no root element".into())),
                other => return Err(XmlError::Malformed(format!("{other:?} before <xml>"))),
            }
        }
        let fields = match read_children(&mut reader, "xml", 1)? {
            XmlValue::Children(fields) => fields,
            XmlValue::Text(t) if t.trim().is_empty() => Vec::new(),
            XmlValue::Text(_) => return Err(XmlError::Mixed("xml".into())),
        };
        trailing(&mut reader)?;
        Ok(XmlMessage { fields })
    }

    /// WeCom's spelling: numbers bare (`<CreateTime>1409659813</CreateTime>`), everything else
    /// in CDATA.
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<xml>");
        write_children(&mut out, &self.fields);
        out.push_str("</xml>");
        out
    }

    /// The JSON rendering, keys in document order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a message always renders")
    }

    /// Back from the JSON rendering (strings, numbers, objects, arrays of those).
    pub fn from_json(json: &str) -> Result<XmlMessage, XmlError> {
        serde_json::from_str(json).map_err(|e| XmlError::Json(e.to_string()))
    }
}

fn next<'a>(reader: &mut Reader<&'a [u8]>) -> Result<Event<'a>, XmlError> {
    reader
        .read_event()
        .map_err(|e| XmlError::Malformed(e.to_string()))
}

fn is_blank(t: &[u8]) -> bool {
    t.iter().all(u8::is_ascii_whitespace)
}

/// After `</xml>` only whitespace and comments may follow.
fn trailing(reader: &mut Reader<&[u8]>) -> Result<(), XmlError> {
    loop {
        match next(reader)? {
            Event::Eof => return Ok(()),
            Event::Text(t) if is_blank(&t) => {}
            Event::Comment(_) => {}
            other => return Err(XmlError::Malformed(format!("{other:?} after </xml>"))),
        }
    }
}

/// Reads up to the end tag of `name`: its text, or its child elements.
fn read_children(
    reader: &mut Reader<&[u8]>,
    name: &str,
    depth: usize,
) -> Result<XmlValue, XmlError> {
    if depth > MAX_DEPTH {
        return Err(XmlError::TooDeep);
    }
    let mut text = String::new();
    let mut children: Vec<(String, XmlValue)> = Vec::new();
    let mut had_text = false;
    loop {
        match next(reader)? {
            Event::Start(e) => {
                let child = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let value = read_children(reader, &child, depth + 1)?;
                children.push((child, value));
            }
            Event::Empty(e) => {
                let child = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                children.push((child, XmlValue::Text(String::new())));
            }
            Event::Text(t) => {
                let raw = t
                    .xml_content()
                    .map_err(|e| XmlError::Malformed(e.to_string()))?;
                had_text |= !raw.trim().is_empty();
                text.push_str(&raw);
            }
            Event::GeneralRef(r) => {
                let raw = r.decode().map_err(|e| XmlError::Malformed(e.to_string()))?;
                let reference = format!("&{raw};");
                let resolved = quick_xml::escape::unescape(&reference)
                    .map_err(|e| XmlError::Malformed(e.to_string()))?;
                had_text = true;
                text.push_str(&resolved);
            }
            Event::CData(c) => {
                let raw = c.decode().map_err(|e| XmlError::Malformed(e.to_string()))?;
                had_text = true;
                text.push_str(&raw);
            }
            Event::End(e) => {
                if e.name().as_ref() != name.as_bytes() {
                    return Err(XmlError::Malformed(format!(
                        "unexpected end tag in <{name}>"
                    )));
                }
                return match (had_text, children.is_empty()) {
                    (true, false) => Err(XmlError::Mixed(name.into())),
                    (_, false) => Ok(XmlValue::Children(children)),
                    (_, true) => Ok(XmlValue::Text(text)),
                };
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Decl(_) => return Err(XmlError::Malformed("declaration inside <xml>".into())),
            Event::Eof => return Err(XmlError::Malformed(format!("<{name}> is not closed"))),
        }
    }
}

fn write_children(out: &mut String, fields: &[(String, XmlValue)]) {
    for (name, value) in fields {
        let _ = write!(out, "<{name}>");
        match value {
            XmlValue::Text(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
                out.push_str(t)
            }
            XmlValue::Text(t) => {
                // "]]>" cannot appear inside one CDATA section: end it there and start another.
                out.push_str("<![CDATA[");
                out.push_str(&t.replace("]]>", "]]]]><![CDATA[>"));
                out.push_str("]]>");
            }
            XmlValue::Children(children) => write_children(out, children),
        }
        let _ = write!(out, "</{name}>");
    }
}

/// Siblings in order, the repeated names gathered into arrays at their first position.
fn grouped(fields: &[(String, XmlValue)]) -> Vec<(&str, Vec<&XmlValue>)> {
    let mut groups: Vec<(&str, Vec<&XmlValue>)> = Vec::new();
    for (name, value) in fields {
        match groups.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => values.push(value),
            None => groups.push((name, vec![value])),
        }
    }
    groups
}

struct Fields<'a>(&'a [(String, XmlValue)]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let groups = grouped(self.0);
        let mut map = s.serialize_map(Some(groups.len()))?;
        for (name, values) in groups {
            if let [one] = values.as_slice() {
                map.serialize_entry(name, *one)?;
            } else {
                map.serialize_entry(name, &values)?;
            }
        }
        map.end()
    }
}

impl Serialize for XmlValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            XmlValue::Text(t) => s.serialize_str(t),
            XmlValue::Children(c) => Fields(c).serialize(s),
        }
    }
}

impl Serialize for XmlMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Fields(&self.fields).serialize(s)
    }
}

/// A JSON value read with its object keys in document order (a `serde_json::Value` would sort
/// them).
enum Json {
    Text(String),
    Object(Vec<(String, Json)>),
    Array(Vec<Json>),
    Other,
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("strings, numbers, objects or arrays")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Text(v.to_string()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Text(v.to_string()))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Text(v.to_string()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Text(v.to_string()))
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Json, E> {
        Ok(Json::Other)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Json, E> {
        Ok(Json::Other)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Json>()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

fn push_json(
    fields: &mut Vec<(String, XmlValue)>,
    name: String,
    value: Json,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("{name:?} is not an element name"));
    }
    let value = match value {
        Json::Text(s) => XmlValue::Text(s),
        Json::Object(entries) => {
            let mut children = Vec::new();
            for (k, v) in entries {
                push_json(&mut children, k, v, depth + 1)?;
            }
            XmlValue::Children(children)
        }
        Json::Array(items) => {
            for item in items {
                push_json(fields, name.clone(), item, depth)?;
            }
            return Ok(());
        }
        Json::Other => return Err(format!("{name}: only strings, numbers, objects, arrays")),
    };
    fields.push((name, value));
    Ok(())
}

impl<'de> Deserialize<'de> for XmlMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Json::Object(entries) = Json::deserialize(d)? else {
            return Err(serde::de::Error::custom("a message is a JSON object"));
        };
        let mut fields = Vec::new();
        for (name, value) in entries {
            push_json(&mut fields, name, value, 1).map_err(serde::de::Error::custom)?;
        }
        Ok(XmlMessage { fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = "<xml><ToUserName><![CDATA[wwemu0000000000001]]></ToUserName>\
<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime>\
<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>\
<ChangeType><![CDATA[delete_user]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID></xml>";

    #[test]
    fn parses_a_flat_event_in_order() {
        let m = XmlMessage::parse(EVENT).unwrap();
        let names: Vec<&str> = m.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "ToUserName",
                "FromUserName",
                "CreateTime",
                "MsgType",
                "Event",
                "ChangeType",
                "UserID"
            ]
        );
        assert_eq!(m.get("CreateTime"), Some("1700000000"));
        assert_eq!(m.get("UserID"), Some("zhangsan"));
        assert_eq!(m.get("Nope"), None);
    }

    #[test]
    fn renders_back_to_the_same_xml() {
        assert_eq!(XmlMessage::parse(EVENT).unwrap().to_xml(), EVENT);
    }

    #[test]
    fn json_keeps_document_order_and_comes_back() {
        let m = XmlMessage::parse(EVENT).unwrap();
        let json = m.to_json();
        assert!(json.starts_with(
            "{\"ToUserName\":\"wwemu0000000000001\",\"FromUserName\":\"sys\",\"CreateTime\":\"1700000000\""
        ), "{json}");
        assert_eq!(XmlMessage::from_json(&json).unwrap(), m);
    }

    #[test]
    fn parse_table() {
        // (name, input, expected fields as JSON or the error's start)
        let cases: &[(&str, &str, Result<&str, &str>)] = &[
            ("declaration and whitespace", "<?xml version=\"1.0\"?>\n<xml>\n <A>1</A>\n <B><![CDATA[x]]></B>\n</xml>\n", Ok(r#"{"A":"1","B":"x"}"#)),
            ("entities", "<xml><A>a &amp; b &lt;c&gt; &#20320;</A></xml>", Ok(r#"{"A":"a & b <c> 你"}"#)),
            ("cdata with markup", "<xml><A><![CDATA[<b>&amp;</b>]]></A></xml>", Ok(r#"{"A":"<b>&amp;</b>"}"#)),
            ("empty elements", "<xml><A/><B></B></xml>", Ok(r#"{"A":"","B":""}"#)),
            ("nested event", "<xml><Event><![CDATA[scancode_push]]></Event><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo></xml>", Ok(r#"{"Event":"scancode_push","ScanCodeInfo":{"ScanType":"qrcode","ScanResult":"1"}}"#)),
            ("repeated names", "<xml><PicList><item><PicMd5Sum>a</PicMd5Sum></item><item><PicMd5Sum>b</PicMd5Sum></item></PicList></xml>", Ok(r#"{"PicList":{"item":[{"PicMd5Sum":"a"},{"PicMd5Sum":"b"}]}}"#)),
            ("empty root", "<xml></xml>", Ok("{}")),
            ("wrong root", "<root><A>1</A></root>", Err("the root element must be <xml>")),
            ("unclosed", "<xml><A>1</A>", Err("not well-formed")),
            ("mismatched", "<xml><A>1</B></xml>", Err("not well-formed")),
            ("mixed content", "<xml><A>x<B>1</B></A></xml>", Err("element <A> mixes")),
            ("doctype", "<!DOCTYPE xml [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><A>&e;</A></xml>", Err("a document type")),
            ("unknown entity", "<xml><A>&e;</A></xml>", Err("not well-formed")),
            ("second root", "<xml></xml><xml></xml>", Err("not well-formed")),
            ("too deep", "<xml><a><a><a><a><a><a><a><a><a>1</a></a></a></a></a></a></a></a></a></xml>", Err("elements nested deeper")),
            ("not xml", "hello", Err("not well-formed")),
        ];
        for (name, input, want) in cases {
            let got = XmlMessage::parse(input)
                .map(|m| m.to_json())
                .map_err(|e| e.to_string());
            match (want, &got) {
                (Ok(json), Ok(g)) => assert_eq!(g, json, "{name}"),
                (Err(prefix), Err(g)) => assert!(g.starts_with(prefix), "{name}: {g}"),
                _ => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn cdata_terminator_in_a_value_survives_the_round_trip() {
        let m = XmlMessage::from_pairs([("Content", "a]]>b"), ("Id", "12")]);
        let xml = m.to_xml();
        assert_eq!(
            xml,
            "<xml><Content><![CDATA[a]]]]><![CDATA[>b]]></Content><Id>12</Id></xml>"
        );
        assert_eq!(XmlMessage::parse(&xml).unwrap(), m);
    }

    #[test]
    fn nested_and_repeated_round_trip_through_json() {
        let xml = "<xml><A>1</A><L><item><X><![CDATA[p]]></X></item><item><X><![CDATA[q]]></X></item></L></xml>";
        let m = XmlMessage::parse(xml).unwrap();
        let back = XmlMessage::from_json(&m.to_json()).unwrap();
        assert_eq!(back.to_xml(), xml);
        // Nested keys keep their order too (a sorting map would put A first).
        let nested = XmlMessage::from_json(r#"{"B":{"Z":"1","A":"2"}}"#).unwrap();
        assert_eq!(nested.to_xml(), "<xml><B><Z>1</Z><A>2</A></B></xml>");
    }

    #[test]
    fn json_that_is_not_a_message_is_refused() {
        for bad in [
            "[1]",
            "{\"A\":null}",
            "{\"A\":true}",
            "{\"a b\":\"1\"}",
            "{\"<x>\":\"1\"}",
            "\"x\"",
        ] {
            assert!(XmlMessage::from_json(bad).is_err(), "{bad}");
        }
        let m = XmlMessage::from_json("{\"AgentID\":1000002,\"Event\":\"x\"}").unwrap();
        assert_eq!(
            m.to_xml(),
            "<xml><AgentID>1000002</AgentID><Event><![CDATA[x]]></Event></xml>"
        );
    }
}
