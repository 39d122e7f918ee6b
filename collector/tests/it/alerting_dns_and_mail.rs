//! DNS probes against a real DNS server on loopback, and email notifications through a real
//! SMTP server on loopback that insists on STARTTLS.

use super::alerting::{
    FAILING, HEALTHY, Hooks, Target, route_to, start_with_alerting, status_and_name,
};
use plumb_test_support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_probes_read_the_response_code_and_the_records() {
    let dns = DnsServer::start("shop.test.", [10, 1, 2, 3].into()).await;
    let hooks = Hooks::start().await;
    let (collector, _dir) = start_with_alerting(
        &unique_database("dns_probe"),
        &format!(
            r#"evaluation_interval = "1s"
[defaults.probe]
interval = "1s"
timeout = "1s"
failure_threshold = 2
[[probe]]
name = "shop-dns"
kind = "dns"
address = "{address}"
query_name = "shop.test"
query_type = "A"
conditions = ["[DNS_RCODE] == NOERROR", "[BODY] == 10.1.2.3"]
{route}"#,
            address = dns.address,
            route = route_to(&hooks.url)
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(dns.questions() >= 2, "the probe asked {}", dns.questions());
    assert!(hooks.bodies().is_empty(), "answering: {:?}", hooks.bodies());

    dns.set(DnsMode::ServFail);
    let fired = hooks.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        status_and_name(&fired[0]),
        ("firing".into(), "shop-dns".into())
    );
    let detail = fired[0]["alerts"][0]["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        detail.contains("[DNS_RCODE] == NOERROR") && detail.contains("SERVFAIL"),
        "{detail}"
    );
    dns.set(DnsMode::Answer);
    let all = hooks.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        status_and_name(&all[1]),
        ("resolved".into(), "shop-dns".into())
    );

    // A server that stops answering fails within the probe's timeout.
    dns.set(DnsMode::Silent);
    let all = hooks.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(status_and_name(&all[2]).0, "firing");
    let detail = all[2]["alerts"][0]["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(detail.contains("no answer within"), "{detail}");
    let uptime = collector.plumb_json(&["uptime", "--since", "1h"]).await;
    assert_eq!(uptime["probes"][0]["probe"], "shop-dns");
    assert_eq!(uptime["probes"][0]["up"], false, "{uptime}");
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_over_starttls_once_when_firing_and_once_when_resolved() {
    let pki = TestPki::new();
    let smtp = SmtpServer::start(&pki.path("server.pem"), &pki.path("server.key")).await;
    let target = Target::start().await;
    let password = "mail-secret-7f3a";
    let (collector, _dir) = start_with_alerting(
        &unique_database("email"),
        &format!(
        r#"evaluation_interval = "1s"
[defaults.probe]
interval = "1s"
failure_threshold = 2
[[probe]]
name = "shop-health"
kind = "http"
url = "{url}"
labels = {{ service = "shop" }}
[route]
receiver = "mail"
group_by = ["alertname", "service"]
group_wait = "1s"
group_interval = "1s"
[[receiver]]
name = "mail"
email = [{{ to = "ops@example.com, dev@example.com", from = "plumb@example.com", smarthost = "{smtp}", auth_username = "plumb", auth_password = "{password}", ca_file = "{ca}" }}]
"#,
        url = target.url,
        smtp = smtp.address,
        ca = pki.arg("ca.pem"),
    ),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    target.set(FAILING);
    let mails = smtp.wait_for(1, Duration::from_secs(20)).await;
    let fired = &mails[0];
    assert!(fired.over_tls, "the mail came over STARTTLS");
    assert_eq!(fired.login.as_deref(), Some("plumb:mail-secret-7f3a"));
    assert_eq!(fired.from, "<plumb@example.com>");
    assert_eq!(fired.to, ["<ops@example.com>", "<dev@example.com>"]);
    assert_eq!(
        fired.header("Subject").as_deref(),
        Some("[FIRING:1] shop-health shop")
    );
    assert!(fired.data.contains("[STATUS] < 400"), "{}", fired.data);

    target.set(HEALTHY);
    let mails = smtp.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        mails[1].header("Subject").as_deref(),
        Some("[RESOLVED] shop-health shop")
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.mails().len(), 2, "one mail per change");
    let alerts = collector.plumb_json(&["alerts", "--history", "1h"]).await;
    let by_mail: Vec<&serde_json::Value> = alerts["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter(|d| d["integration"] == "email")
        .collect();
    assert_eq!(by_mail.len(), 2, "{alerts}");
    assert!(by_mail.iter().all(|d| d["ok"] == true), "{alerts}");
    assert!(
        !collector.log().contains(password),
        "the SMTP password is never logged"
    );
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_server_without_starttls_is_refused_recorded_and_retried() {
    // A plain listener that speaks SMTP without offering STARTTLS: required TLS means no mail.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = std::sync::Arc::clone(&connections);
    tokio::spawn(async move {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut conn = tokio::io::BufReader::new(stream);
                let _ = conn.get_mut().write_all(b"220 plain ESMTP\r\n").await;
                let mut line = String::new();
                while conn.read_line(&mut line).await.is_ok_and(|n| n > 0) {
                    let reply: &[u8] = if line.to_ascii_uppercase().starts_with("EHLO") {
                        b"250 plain\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = conn.get_mut().write_all(reply).await;
                    line.clear();
                }
            });
        }
    });
    let target = Target::start().await;
    let (collector, _dir) = start_with_alerting(
        &unique_database("email_no_tls"),
        &format!(
            r#"evaluation_interval = "1s"
[defaults.probe]
interval = "1s"
failure_threshold = 1
[[probe]]
name = "shop-health"
kind = "http"
url = "{url}"
[route]
receiver = "mail"
group_wait = "1s"
[[receiver]]
name = "mail"
email = [{{ to = "ops@example.com", from = "plumb@example.com", smarthost = "{address}" }}]
"#,
            url = target.url,
        ),
    )
    .await;
    target.set(FAILING);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = collector.plumb_json(&["alerts", "--history", "1h"]).await;
        let failed: Vec<&serde_json::Value> = alerts["deliveries"]
            .as_array()
            .expect("deliveries")
            .iter()
            .filter(|d| d["integration"] == "email" && d["ok"] == false)
            .collect();
        if failed.len() >= 2 {
            let error = failed[0]["outcome"].as_str().unwrap_or_default();
            assert!(error.contains(&address.to_string()), "{error}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "two failed attempts recorded: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(connections.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert!(collector.stop().await);
}
