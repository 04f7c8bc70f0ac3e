//! Departments and tags (issue 18): `department/simplelist` answers a subtree, `tag/get` the
//! tagged members and departments, and control calls move members and tag them, with fault
//! injection as on any API.

mod common;

use common::*;
use serde_json::{json, Value};

fn ids(v: &Value) -> Vec<u64> {
    v["department_id"]
        .as_array()
        .unwrap_or_else(|| panic!("no department_id in {v}"))
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect()
}

/// A deeper tree than the default: 1 > 2 > 3 > 5, 1 > 4, where 4's larger `order` puts it
/// before 2 (WeCom: the larger order first).
fn tree() -> emulator::Scenario {
    let text = Scenario::default_toml().replace(
        "[[tags]]",
        "[[departments]]\nid = 4\nname = \"客服部\"\nparentid = 1\norder = 1\n\n\
         [[departments]]\nid = 5\nname = \"上海小组\"\nparentid = 3\n\n[[tags]]",
    );
    emulator::Scenario::from_toml(&text).unwrap()
}

use emulator::Scenario;

#[tokio::test]
async fn simplelist_answers_the_subtree_parents_first() {
    let h = start_with(tree()).await;
    let t = h.agent_token().await;
    let list = |id: &str| format!("/cgi-bin/department/simplelist?access_token={t}{id}");
    let cases: [(&str, Vec<u64>); 5] = [
        ("", vec![1, 4, 2, 3, 5]),
        ("&id=1", vec![1, 4, 2, 3, 5]),
        ("&id=2", vec![2, 3, 5]),
        ("&id=3", vec![3, 5]),
        ("&id=4", vec![4]),
    ];
    for (id, want) in cases {
        let v = h.get(&list(id)).await;
        assert_eq!(v["errcode"], 0, "{id}: {v}");
        assert_eq!(ids(&v), want, "{id}");
    }
    let v = h.get(&list("&id=2")).await;
    assert_eq!(
        v["department_id"][1],
        json!({"id": 3, "parentid": 2, "order": 0})
    );
    assert_err(&h.get(&list("&id=99")).await, 60123, "unknown department");
    assert_err(&h.get(&list("&id=x")).await, 40058, "not a number");
    assert_err(
        &h.get("/cgi-bin/department/simplelist?access_token=nope")
            .await,
        40014,
        "unknown token",
    );
}

#[tokio::test]
async fn tag_get_answers_members_and_departments() {
    let h = start().await;
    let t = h.agent_token().await;
    let v = h
        .get(&format!("/cgi-bin/tag/get?access_token={t}&tagid=1"))
        .await;
    assert_eq!(
        v,
        json!({"errcode": 0, "errmsg": "ok", "tagname": "经理",
               "userlist": [{"userid": "zhangsan", "name": "张三"}], "partylist": []})
    );
    assert_err(
        &h.get(&format!("/cgi-bin/tag/get?access_token={t}&tagid=9"))
            .await,
        40068,
        "unknown tag",
    );
    assert_err(
        &h.get(&format!("/cgi-bin/tag/get?access_token={t}")).await,
        40068,
        "no tagid",
    );
}

#[tokio::test]
async fn control_calls_move_members_and_tag_them() {
    let h = start_with(tree()).await;
    let t = h.agent_token().await;
    let user = || format!("/cgi-bin/user/get?access_token={t}&userid=zhangsan");
    let r = h
        .control(
            "members/move",
            json!({"userid": "zhangsan", "department": [4, 5]}),
        )
        .await;
    assert_eq!(r["ok"], true);
    assert_eq!(h.get(&user()).await["department"], json!([4, 5]));
    let tag = || format!("/cgi-bin/tag/get?access_token={t}&tagid=1");
    h.control("tags/add", json!({"tagid": 1, "departments": [2]}))
        .await;
    h.control("tags/remove", json!({"tagid": 1, "userids": ["zhangsan"]}))
        .await;
    let v = h.get(&tag()).await;
    assert_eq!(v["userlist"], json!([]));
    assert_eq!(v["partylist"], json!([2]));
    let refused = [
        (
            "members/move",
            json!({"userid": "zhangsan", "department": [99]}),
            404,
        ),
        (
            "members/move",
            json!({"userid": "zhangsan", "department": []}),
            400,
        ),
        (
            "members/move",
            json!({"userid": "nobody", "department": [1]}),
            404,
        ),
        (
            "tags/add",
            json!({"tagid": 9, "userids": ["zhangsan"]}),
            404,
        ),
        ("tags/add", json!({"tagid": 1, "userids": ["nobody"]}), 404),
        ("tags/add", json!({"tagid": 1, "departments": [99]}), 404),
    ];
    for (path, body, status) in refused {
        assert_eq!(
            h.control_status(path, body.clone()).await,
            status,
            "{path} {body}"
        );
    }
    h.control("reset", json!({})).await;
    let t = h.agent_token().await;
    let v = h
        .get(&format!(
            "/cgi-bin/user/get?access_token={t}&userid=zhangsan"
        ))
        .await;
    assert_eq!(
        v["department"],
        json!([3]),
        "reset restores the scenario's directory"
    );
}

#[tokio::test]
async fn faults_apply_to_the_directory_apis() {
    let h = start().await;
    let t = h.agent_token().await;
    for api in [
        "/cgi-bin/department/simplelist",
        "/cgi-bin/tag/get",
        "/cgi-bin/user/get",
    ] {
        h.control("faults", json!({"api": api, "errcode": 60011}))
            .await;
        let v = h
            .get(&format!("{api}?access_token={t}&tagid=1&userid=zhangsan"))
            .await;
        assert_err(&v, 60011, api);
        let v = h
            .get(&format!("{api}?access_token={t}&tagid=1&userid=zhangsan"))
            .await;
        assert_eq!(v["errcode"], 0, "{api}: one fault only");
        assert_eq!(
            h.calls().await["calls"][api],
            json!({"total": 2, "by_errcode": {"0": 1, "60011": 1}}),
            "{api}"
        );
    }
}

#[test]
fn a_bad_tree_is_refused_at_load() {
    let base = Scenario::default_toml();
    let cases = [
        (
            "missing parent",
            base.replace("parentid = 2", "parentid = 9"),
        ),
        (
            "cycle",
            base.replace(
                "id = 2\nname = \"销售部\"\nparentid = 1",
                "id = 2\nname = \"销售部\"\nparentid = 3",
            ),
        ),
        (
            "member in no such department",
            base.replace("department = [3]", "department = [8]"),
        ),
        (
            "tag of a stranger",
            base.replace("users = [\"zhangsan\"]", "users = [\"nobody\"]"),
        ),
        (
            "tag of no such department",
            base.replace("departments = []  ", "departments = [8]  "),
        ),
    ];
    for (name, text) in cases {
        assert_ne!(text, base, "{name}: fixture did not apply");
        assert!(Scenario::from_toml(&text).is_err(), "{name}: accepted");
    }
}
