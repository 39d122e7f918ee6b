//! A DNS probe's query: one question sent to the probe's server over UDP, asked again over TCP
//! when the answer comes back cut short, and the answer read for its response code and records.
//!
//! In: the server (`host:port`), the name and the record type. Out: an [`Answer`], or why there
//! is none (no server address, no answer, an answer that does not parse or does not match the
//! question). Nothing a server sends can panic it.

use super::check::CheckResult;
use hickory_proto::op::{Message, MessageType, Query};
use hickory_proto::rr::{Name, RecordType};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The largest answer read over UDP (answers are at most 512 bytes without EDNS).
const MAX_UDP_ANSWER: usize = 4096;

/// What the server answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The response code by its usual name (`NOERROR`, `NXDOMAIN`, ...).
    pub(crate) rcode: String,
    /// The data of the answer's records of the asked type, in the order sent, joined by ", "
    /// (what conditions read as `[BODY]`).
    pub(crate) records: String,
}

/// The usual name of a response code (RFC 1035, RFC 2136, RFC 6891), or its number.
fn rcode_name(code: u16) -> String {
    const NAMES: [&str; 11] = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE",
    ];
    match code {
        16 => "BADVERS".to_owned(),
        c => NAMES
            .get(usize::from(c))
            .map_or_else(|| format!("RCODE{c}"), |n| (*n).to_owned()),
    }
}

/// Asks `server` for the `record_type` records of `name`, timing the lookup of the server's
/// address (`dns`) and the exchange (`first_byte`) in `result`.
pub(crate) async fn ask(
    server: &str,
    name: &str,
    record_type: &str,
    result: &mut CheckResult,
) -> Result<Answer, String> {
    let record_type = RecordType::from_str(record_type)
        .map_err(|e| format!("{record_type} is not a record type: {e}"))?;
    let name = Name::from_utf8(name).map_err(|e| format!("{name:?} is not a DNS name: {e}"))?;
    let mut question = Message::query();
    question.metadata.recursion_desired = true;
    question.add_query(Query::query(name, record_type));
    let bytes = question
        .to_vec()
        .map_err(|e| format!("cannot write the question: {e}"))?;

    let started = Instant::now();
    let address = tokio::net::lookup_host(server)
        .await
        .map_err(|e| format!("cannot resolve {server}: {e}"))?
        .next()
        .ok_or_else(|| format!("{server} resolves to no address"))?;
    result.dns = started.elapsed();

    let started = Instant::now();
    let mut answer = over_udp(address, &bytes, question.metadata.id).await?;
    if answer.metadata.truncation {
        answer = over_tcp(address, &bytes, question.metadata.id).await?;
    }
    result.first_byte = started.elapsed();
    if answer.queries.first().map(Query::query_type) != Some(record_type) {
        return Err(format!("{server} answered another question"));
    }
    let records: Vec<String> = answer
        .answers
        .iter()
        .filter(|r| r.record_type() == record_type)
        .map(|r| r.data.to_string())
        .collect();
    Ok(Answer {
        rcode: rcode_name(u16::from(answer.metadata.response_code)),
        records: records.join(", "),
    })
}

/// Reads `bytes` as an answer to the question with `id`.
fn parse_answer(bytes: &[u8], id: u16) -> Option<Result<Message, String>> {
    match Message::from_vec(bytes) {
        Ok(m) if m.metadata.id == id && m.metadata.message_type == MessageType::Response => {
            Some(Ok(m))
        }
        Ok(_) => None,
        Err(e) => Some(Err(format!("the answer does not parse: {e}"))),
    }
}

/// Sends the question over UDP and waits for its answer (other datagrams are ignored; the
/// check's timeout bounds the wait).
async fn over_udp(server: SocketAddr, question: &[u8], id: u16) -> Result<Message, String> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket
        .connect(server)
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    socket
        .send(question)
        .await
        .map_err(|e| format!("cannot send to {server}: {e}"))?;
    let mut buf = vec![0u8; MAX_UDP_ANSWER];
    loop {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| format!("no answer from {server}: {e}"))?;
        if let Some(answer) = parse_answer(&buf[..n], id) {
            return answer;
        }
    }
}

/// Sends the question over TCP (two-byte length before each message) and reads the answer.
async fn over_tcp(server: SocketAddr, question: &[u8], id: u16) -> Result<Message, String> {
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| format!("cannot connect to {server} over TCP: {e}"))?;
    let len = u16::try_from(question.len()).map_err(|_| "the question is too long".to_owned())?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(question);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| format!("cannot send to {server} over TCP: {e}"))?;
    let len = stream
        .read_u16()
        .await
        .map_err(|e| format!("no answer from {server} over TCP: {e}"))?;
    let mut buf = vec![0u8; usize::from(len)];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| format!("the answer from {server} over TCP is cut short: {e}"))?;
    parse_answer(&buf, id).unwrap_or_else(|| Err(format!("{server} answered another question")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_codes_have_their_usual_names() {
        assert_eq!(rcode_name(0), "NOERROR");
        assert_eq!(rcode_name(2), "SERVFAIL");
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(16), "BADVERS");
        assert_eq!(rcode_name(23), "RCODE23");
    }

    #[test]
    fn garbage_and_other_ids_are_not_answers() {
        assert!(matches!(parse_answer(&[1, 2, 3], 7), Some(Err(_))));
        let other = Message::response(8, hickory_proto::op::OpCode::Query)
            .to_vec()
            .expect("encodes");
        assert!(parse_answer(&other, 7).is_none());
        let question = Message::query().to_vec().expect("encodes");
        let id = u16::from_be_bytes([question[0], question[1]]);
        assert!(
            parse_answer(&question, id).is_none(),
            "a question is not an answer"
        );
    }
}
