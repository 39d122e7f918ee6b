//! A DNS server on loopback for probe tests: over UDP it answers `A` questions for one name with
//! one address, other names with NXDOMAIN, and on command fails every question (SERVFAIL) or
//! stops answering; it counts the questions it got.

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// How the server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DnsMode {
    /// The name's address; NXDOMAIN for other names.
    Answer = 0,
    /// SERVFAIL to every question.
    ServFail = 1,
    /// No answer at all.
    Silent = 2,
}

/// The running server.
pub struct DnsServer {
    /// Where it listens (UDP on 127.0.0.1).
    pub address: SocketAddr,
    mode: Arc<AtomicU8>,
    questions: Arc<AtomicU64>,
}

impl DnsServer {
    /// Starts answering `name` with `ip`.
    pub async fn start(name: &str, ip: Ipv4Addr) -> Self {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind UDP");
        let address = socket.local_addr().expect("addr");
        let name = Name::from_utf8(name).expect("name");
        let mode = Arc::new(AtomicU8::new(DnsMode::Answer as u8));
        let questions = Arc::new(AtomicU64::new(0));
        let (m, q) = (Arc::clone(&mode), Arc::clone(&questions));
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                q.fetch_add(1, Ordering::SeqCst);
                let Ok(question) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mode = m.load(Ordering::SeqCst);
                if mode == DnsMode::Silent as u8 {
                    continue;
                }
                let mut answer = Message::response(question.metadata.id, question.metadata.op_code);
                answer.metadata.message_type = MessageType::Response;
                answer.metadata.recursion_desired = question.metadata.recursion_desired;
                answer.add_queries(question.queries.iter().cloned());
                let asked = question.queries.first();
                answer.metadata.response_code = if mode == DnsMode::ServFail as u8 {
                    ResponseCode::ServFail
                } else if asked.is_some_and(|q| q.name() == &name) {
                    if asked.is_some_and(|q| q.query_type() == RecordType::A) {
                        answer.add_answer(Record::from_rdata(name.clone(), 60, RData::A(A(ip))));
                    }
                    ResponseCode::NoError
                } else {
                    ResponseCode::NXDomain
                };
                if let Ok(bytes) = answer.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        Self {
            address,
            mode,
            questions,
        }
    }

    /// Changes how it answers from now on.
    pub fn set(&self, mode: DnsMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Questions received so far.
    pub fn questions(&self) -> u64 {
        self.questions.load(Ordering::SeqCst)
    }
}
