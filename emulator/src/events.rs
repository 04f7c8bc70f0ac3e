//! The plaintext XML of the events WeCom sends, field for field as its documentation shows them
//! (WECOM_API.md "Callbacks in detail"). Pure: the caller gives the time.

use wecom_api::XmlMessage;

/// The head every contact event shares: from `sys`, `MsgType` event.
fn contact_event(
    corp: &str,
    create_time: u64,
    event: &str,
    change_type: &str,
) -> Vec<(String, String)> {
    [
        ("ToUserName", corp.to_string()),
        ("FromUserName", "sys".to_string()),
        ("CreateTime", create_time.to_string()),
        ("MsgType", "event".to_string()),
        ("Event", event.to_string()),
        ("ChangeType", change_type.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn render(mut head: Vec<(String, String)>, rest: &[(&str, String)]) -> String {
    head.extend(rest.iter().map(|(k, v)| (k.to_string(), v.clone())));
    XmlMessage::from_pairs(head).to_xml()
}

/// `change_contact` / `delete_user`: a member left the corp.
pub fn delete_user(corp: &str, t: u64, userid: &str) -> String {
    render(
        contact_event(corp, t, "change_contact", "delete_user"),
        &[("UserID", userid.into())],
    )
}

/// `change_contact` / `update_user` after a move: `Department` is the new list.
pub fn update_user_departments(corp: &str, t: u64, userid: &str, departments: &[u64]) -> String {
    let list: Vec<String> = departments.iter().map(u64::to_string).collect();
    render(
        contact_event(corp, t, "change_contact", "update_user"),
        &[("UserID", userid.into()), ("Department", list.join(","))],
    )
}

/// `change_contact` / `update_tag`: only the lists that changed are present.
pub fn update_tag(
    corp: &str,
    t: u64,
    tagid: u64,
    added: bool,
    users: &[String],
    parties: &[u64],
) -> String {
    let (user_key, party_key) = if added {
        ("AddUserItems", "AddPartyItems")
    } else {
        ("DelUserItems", "DelPartyItems")
    };
    let mut rest = vec![("TagId", tagid.to_string())];
    if !users.is_empty() {
        rest.push((user_key, users.join(",")));
    }
    if !parties.is_empty() {
        let p: Vec<String> = parties.iter().map(u64::to_string).collect();
        rest.push((party_key, p.join(",")));
    }
    render(
        contact_event(corp, t, "change_contact", "update_tag"),
        &rest,
    )
}

/// `change_external_contact`: `add_external_contact` (with `State`, `WelcomeCode`),
/// `del_external_contact` (the member removed the customer), `del_follow_user` (the customer
/// removed the member).
pub fn external_contact(
    corp: &str,
    t: u64,
    change_type: &str,
    userid: &str,
    external_userid: &str,
    state: Option<&str>,
) -> String {
    let mut rest = vec![
        ("UserID", userid.to_string()),
        ("ExternalUserID", external_userid.to_string()),
    ];
    if change_type == "add_external_contact" {
        rest.push(("State", state.unwrap_or_default().to_string()));
        rest.push(("WelcomeCode", crate::state::random_token(32)));
    }
    render(
        contact_event(corp, t, "change_external_contact", change_type),
        &rest,
    )
}

/// A third-party instruction: `<SuiteId>`, `<InfoType>`, `<TimeStamp>` and its fields, in the
/// order WeCom writes them.
pub fn instruction(suite: &str, info_type: &str, t: u64, fields: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = vec![("SuiteId".into(), suite.into())];
    // create_auth and reset_permanent_code put AuthCode before InfoType.
    let (early, late): (Vec<_>, Vec<_>) = fields.iter().partition(|(k, _)| *k == "AuthCode");
    pairs.extend(early.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    pairs.push(("InfoType".into(), info_type.into()));
    pairs.push(("TimeStamp".into(), t.to_string()));
    pairs.extend(late.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    XmlMessage::from_pairs(pairs).to_xml()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_the_documented_fields_in_order() {
        let cases = [
            (delete_user("wwc", 1700000000, "zhangsan"),
             "<xml><ToUserName><![CDATA[wwc]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[delete_user]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID></xml>"),
            (update_user_departments("wwc", 1, "lisi", &[2, 3]),
             "<xml><ToUserName><![CDATA[wwc]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[update_user]]></ChangeType><UserID><![CDATA[lisi]]></UserID><Department><![CDATA[2,3]]></Department></xml>"),
            (update_tag("wwc", 1, 7, false, &["a".into(), "b".into()], &[]),
             "<xml><ToUserName><![CDATA[wwc]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[update_tag]]></ChangeType><TagId>7</TagId><DelUserItems><![CDATA[a,b]]></DelUserItems></xml>"),
            (external_contact("wwc", 1, "del_follow_user", "zhangsan", "wmX", None),
             "<xml><ToUserName><![CDATA[wwc]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[del_follow_user]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[wmX]]></ExternalUserID></xml>"),
            (instruction("wws", "suite_ticket", 9, &[("SuiteTicket", "T")]),
             "<xml><SuiteId><![CDATA[wws]]></SuiteId><InfoType><![CDATA[suite_ticket]]></InfoType><TimeStamp>9</TimeStamp><SuiteTicket><![CDATA[T]]></SuiteTicket></xml>"),
            (instruction("wws", "create_auth", 9, &[("AuthCode", "C"), ("State", "s")]),
             "<xml><SuiteId><![CDATA[wws]]></SuiteId><AuthCode><![CDATA[C]]></AuthCode><InfoType><![CDATA[create_auth]]></InfoType><TimeStamp>9</TimeStamp><State><![CDATA[s]]></State></xml>"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        let add = XmlMessage::parse(&external_contact(
            "wwc",
            1,
            "add_external_contact",
            "u",
            "wmX",
            Some("st"),
        ))
        .unwrap();
        assert_eq!(add.get("State"), Some("st"));
        assert_eq!(add.get("WelcomeCode").map(str::len), Some(32));
    }
}
