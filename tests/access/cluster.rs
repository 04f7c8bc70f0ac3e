//! Three instances on one Redis share the cached facts: one `user/get` for three.

use crate::{access_world, member, ROUTES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_redis_share_the_facts() {
    let w = access_world("", ROUTES).redis(3).start().await;
    let others = &w.gateways[1..];
    let mut b = member(&w, "wangwu");
    let cookie = b.cookie_header(&w.gw().url("/"));
    let r = b.get_json(&w.gw().url("/sales/"), &[]).await;
    assert_eq!(r.status(), 200);
    for gw in others {
        let r = crate::common::client()
            .get(gw.url("/sales/"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        w.calls("/cgi-bin/user/get").await,
        1,
        "one user/get for three instances"
    );
    assert_eq!(w.calls("/cgi-bin/department/simplelist").await, 1);
    assert_eq!(w.up.hits(), 3);
}
