//! Three instances on one Redis share the cached facts: one `user/get` for three.

use crate::common::redis_server::RedisServer;
use crate::common::{server_table, Gateway};
use crate::{member, start, ROUTES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_redis_share_the_facts() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let store = format!(
        "[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"wgw:\"\n",
        redis.url()
    );
    let rest = format!("{ROUTES}\n{store}");
    let w = start("", &rest).await;
    // Two more instances with the same configuration, on their own ports.
    let text = std::fs::read_to_string(&w.gw.config_path).unwrap();
    let body = text.replacen(&server_table(), "", 1);
    let others: Vec<Gateway> =
        tokio::task::spawn_blocking(move || vec![Gateway::start(&body), Gateway::start(&body)])
            .await
            .unwrap();
    let mut b = member(&w, "wangwu");
    let cookie = b.cookie_header(&w.gw.url("/"));
    let r = b.get_json(&w.gw.url("/sales/"), &[]).await;
    assert_eq!(r.status(), 200);
    for gw in &others {
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
