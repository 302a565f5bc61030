//! HTTP/1.1 over a plain TCP stream for the shard data path: one request per connection,
//! the body written straight from the caller's buffers and read straight into them.
//!
//! Why not the general HTTP client: it stages every body byte in its own buffer, so a put
//! paid one extra copy per shard byte (the encoder's pieces, its send buffer, the socket)
//! and a get another (the socket, its receive buffer, the piece). On a machine where
//! client, providers and validator share two cores those copies were a tenth of the
//! client's time. Everything that is not bulk (receipts' JSON, proofs, probes) still goes
//! through the general client.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The most bytes a response head may take.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Headers a response may carry.
const MAX_HEADERS: usize = 64;
/// Bytes read at a time while looking for the end of the head or of a chunk-size line;
/// what arrives past it is kept for the body.
const FRAMING_READ_BYTES: usize = 16 * 1024;

/// Time limits of one exchange.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect_ms: u64,
    /// Each read and each write (a provider syncs a shard before it answers a PUT).
    pub io_ms: u64,
}

/// Where an endpoint's requests go: `host:port` to connect to, and the `Host` header.
fn authority(endpoint: &str) -> io::Result<&str> {
    let rest = endpoint.strip_prefix("http://").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("endpoint {endpoint:?} is not an http:// URL"),
        )
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("endpoint {endpoint:?} names no host"),
        ));
    }
    Ok(authority)
}

/// Connects to `endpoint` (an `http://host:port` URL) and sends a request head. The body,
/// if `content_length` announces one, is written to the returned [`Request`].
pub fn start(
    endpoint: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    content_length: Option<u64>,
    timeouts: Timeouts,
) -> io::Result<Request> {
    let authority = authority(endpoint)?;
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{authority} resolves to no address"),
    );
    let mut stream = None;
    for addr in with_port.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(timeouts.connect_ms)) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let stream = stream.ok_or(last)?;
    let io_timeout = Some(Duration::from_millis(timeouts.io_ms.max(1)));
    stream.set_read_timeout(io_timeout)?;
    stream.set_write_timeout(io_timeout)?;
    stream.set_nodelay(true)?;
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n");
    for (name, value) in headers {
        if [name, value]
            .iter()
            .any(|s| s.bytes().any(|b| b == b'\r' || b == b'\n'))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("header {name:?} holds a line break"),
            ));
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(len) = content_length {
        head.push_str(&format!("content-length: {len}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = Request {
        stream,
        announced: content_length.unwrap_or(0),
        written: 0,
    };
    request.stream.write_all(head.as_bytes())?;
    Ok(request)
}

/// A request whose head is sent: write its body, then [`Request::finish`].
pub struct Request {
    stream: TcpStream,
    announced: u64,
    written: u64,
}

impl Write for Request {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.announced - self.written;
        if u64::try_from(data.len()).unwrap_or(u64::MAX) > room {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a body of {} bytes was announced; {} more would exceed it",
                    self.announced,
                    data.len()
                ),
            ));
        }
        let n = self.stream.write(data)?;
        self.written += u64::try_from(n).unwrap_or(0);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Request {
    /// Reads the response head; fails when fewer body bytes were written than announced
    /// (the server would wait for the rest, or take a truncated body).
    pub fn finish(self) -> io::Result<Response> {
        if self.written != self.announced {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the body ended after {} of the {} bytes announced",
                    self.written, self.announced
                ),
            ));
        }
        Response::read(self.stream)
    }

    /// Reads whatever response the server sent before it stopped reading the body (a
    /// refusal is usually answered before the body is taken). `None` when there is none.
    pub fn response_after_failure(self) -> Option<Response> {
        Response::read(self.stream).ok()
    }
}

/// A response: its status, the headers the data path needs, and the body as a stream.
pub struct Response {
    pub status: u16,
    /// `content-length`, when the server sent one.
    pub content_length: Option<u64>,
    pub body: Body,
}

impl Response {
    fn read(mut stream: TcpStream) -> io::Result<Response> {
        let mut buf = Vec::with_capacity(FRAMING_READ_BYTES);
        loop {
            let (status, content_length, chunked, head_len) = {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut parsed = httparse::Response::new(&mut headers);
                match parsed.parse(&buf) {
                    Ok(httparse::Status::Complete(len)) => {
                        let mut content_length = None;
                        let mut chunked = false;
                        for h in parsed.headers.iter() {
                            if h.name.eq_ignore_ascii_case("content-length") {
                                let value = std::str::from_utf8(h.value)
                                    .ok()
                                    .and_then(|v| v.trim().parse::<u64>().ok())
                                    .ok_or_else(|| bad("a content-length that is not a number"))?;
                                content_length = Some(value);
                            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                                chunked = std::str::from_utf8(h.value).is_ok_and(|v| {
                                    v.split(',')
                                        .any(|t| t.trim().eq_ignore_ascii_case("chunked"))
                                });
                            }
                        }
                        (parsed.code.unwrap_or(0), content_length, chunked, len)
                    }
                    Ok(httparse::Status::Partial) => {
                        if buf.len() >= MAX_HEAD_BYTES {
                            return Err(bad(format!(
                                "a response head longer than {MAX_HEAD_BYTES} bytes"
                            )));
                        }
                        (0, None, false, 0)
                    }
                    Err(e) => return Err(bad(format!("a malformed response head ({e})"))),
                }
            };
            if head_len > 0 {
                let framing = if chunked {
                    Framing::Chunked { left: 0 }
                } else if let Some(len) = content_length {
                    Framing::Length { left: len }
                } else {
                    Framing::UntilClose
                };
                buf.drain(..head_len);
                return Ok(Response {
                    status,
                    content_length: if chunked { None } else { content_length },
                    body: Body {
                        stream,
                        pending: buf,
                        at: 0,
                        framing,
                    },
                });
            }
            let old = buf.len();
            buf.resize(old + FRAMING_READ_BYTES, 0);
            let n = stream.read(&mut buf[old..])?;
            buf.truncate(old + n);
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed before a response head",
                ));
            }
        }
    }
}

fn bad(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the server sent {what}"),
    )
}

enum Framing {
    Length {
        left: u64,
    },
    /// `left` bytes of the current chunk remain; 0 means a size line comes next.
    Chunked {
        left: u64,
    },
    UntilClose,
    Done,
}

/// A response body. Large reads go straight from the socket into the caller's buffer;
/// only framing (a head's overshoot, chunk-size lines) passes through `pending`.
pub struct Body {
    stream: TcpStream,
    pending: Vec<u8>,
    at: usize,
    framing: Framing,
}

impl Body {
    /// Reads into `out` from what is pending, else from the socket.
    fn raw_read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at < self.pending.len() {
            let n = out.len().min(self.pending.len() - self.at);
            out[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
            self.at += n;
            if self.at == self.pending.len() {
                self.pending.clear();
                self.at = 0;
            }
            return Ok(n);
        }
        self.stream.read(out)
    }

    /// One CRLF-terminated line of framing, without the CRLF.
    fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        loop {
            if self.at >= self.pending.len() {
                self.pending.clear();
                self.at = 0;
                self.pending.resize(FRAMING_READ_BYTES, 0);
                let n = self.stream.read(&mut self.pending)?;
                self.pending.truncate(n);
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed inside a chunked body",
                    ));
                }
            }
            let rest = &self.pending[self.at..];
            if let Some(i) = rest.iter().position(|&b| b == b'\n') {
                line.extend_from_slice(&rest[..i]);
                self.at += i + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return String::from_utf8(line).map_err(|_| bad("a chunk line that is not text"));
            }
            line.extend_from_slice(rest);
            self.at = self.pending.len();
            if line.len() > 4096 {
                return Err(bad("a chunk line longer than 4096 bytes"));
            }
        }
    }
}

impl Read for Body {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.framing {
                Framing::Done => return Ok(0),
                Framing::UntilClose => return self.raw_read(out),
                Framing::Length { left } => {
                    if left == 0 {
                        self.framing = Framing::Done;
                        return Ok(0);
                    }
                    let want = out.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.raw_read(&mut out[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the connection closed with {left} body bytes to come"),
                        ));
                    }
                    self.framing = Framing::Length {
                        left: left - u64::try_from(n).unwrap_or(left),
                    };
                    return Ok(n);
                }
                Framing::Chunked { left: 0 } => {
                    let line = self.read_line()?;
                    let size = line.split(';').next().unwrap_or_default().trim();
                    let size = u64::from_str_radix(size, 16)
                        .map_err(|_| bad(format!("a bad chunk size {size:?}")))?;
                    if size == 0 {
                        // Trailers, if any, end with an empty line.
                        while !self.read_line()?.is_empty() {}
                        self.framing = Framing::Done;
                        return Ok(0);
                    }
                    self.framing = Framing::Chunked { left: size };
                }
                Framing::Chunked { left } => {
                    let want = out.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.raw_read(&mut out[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the connection closed inside a chunk",
                        ));
                    }
                    let left = left - u64::try_from(n).unwrap_or(left);
                    if left == 0 && !self.read_line()?.is_empty() {
                        return Err(bad("a chunk longer than its size"));
                    }
                    self.framing = Framing::Chunked { left };
                    return Ok(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server: reads the request up to its end (head plus `content-length`),
    /// answers `reply`, and hands back what it read.
    fn serve(reply: &'static [u8]) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            s.write_all(reply).unwrap();
            got
        });
        (endpoint, handle)
    }

    const T: Timeouts = Timeouts {
        connect_ms: 2000,
        io_ms: 5000,
    };

    #[test]
    fn put_sends_head_and_body_and_reads_a_sized_answer() {
        let (endpoint, server) = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
        let mut req = start(&endpoint, "PUT", "/x?y=1", &[("x-a", "b")], Some(3), T).unwrap();
        req.write_all(b"abc").unwrap();
        assert!(
            req.write_all(b"d").is_err(),
            "more than announced is refused"
        );
        let mut resp = req.finish().unwrap();
        assert_eq!((resp.status, resp.content_length), (200, Some(5)));
        let mut body = String::new();
        resp.body.read_to_string(&mut body).unwrap();
        assert_eq!(body, "hello");
        let sent = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(sent.starts_with("PUT /x?y=1 HTTP/1.1\r\n"), "{sent}");
        assert!(
            sent.contains("x-a: b\r\n") && sent.ends_with("\r\n\r\nabc"),
            "{sent}"
        );
    }

    #[test]
    fn a_short_body_is_an_error_before_any_answer() {
        let (endpoint, _server) = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        let mut req = start(&endpoint, "PUT", "/", &[], Some(3), T).unwrap();
        req.write_all(b"ab").unwrap();
        let e = req.finish().err().unwrap();
        assert!(e.to_string().contains("2 of the 3"), "{e}");
    }

    #[test]
    fn chunked_and_close_delimited_bodies_decode() {
        let (endpoint, _s) = serve(
            b"HTTP/1.1 206 Partial\r\ntransfer-encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        let mut resp = start(&endpoint, "GET", "/", &[], None, T)
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!((resp.status, resp.content_length), (206, None));
        let mut body = Vec::new();
        resp.body.read_to_end(&mut body).unwrap();
        assert_eq!(body, b"abcde");
        let (endpoint, _s) = serve(b"HTTP/1.1 200 OK\r\n\r\nuntil close");
        let mut resp = start(&endpoint, "GET", "/", &[], None, T)
            .unwrap()
            .finish()
            .unwrap();
        let mut body = String::new();
        resp.body.read_to_string(&mut body).unwrap();
        assert_eq!(body, "until close");
    }

    #[test]
    fn a_body_cut_short_or_a_bad_head_is_an_error() {
        let (endpoint, _s) = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc");
        let mut resp = start(&endpoint, "GET", "/", &[], None, T)
            .unwrap()
            .finish()
            .unwrap();
        let e = resp.body.read_to_end(&mut Vec::new()).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        let (endpoint, _s) = serve(b"HTTP/1.1 200 OK\r\ncontent-length: ten\r\n\r\n");
        let e = start(&endpoint, "GET", "/", &[], None, T)
            .unwrap()
            .finish()
            .err()
            .unwrap();
        assert!(e.to_string().contains("content-length"), "{e}");
        let (endpoint, _s) = serve(b"NOT HTTP\r\n\r\n");
        assert!(
            start(&endpoint, "GET", "/", &[], None, T)
                .unwrap()
                .finish()
                .is_err()
        );
    }

    #[test]
    fn endpoints_and_headers_are_checked() {
        for bad in ["https://a:1", "a:1", "http://", "http:///x"] {
            assert!(start(bad, "GET", "/", &[], None, T).is_err(), "{bad}");
        }
        let (endpoint, _s) = serve(b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(start(&endpoint, "GET", "/", &[("a", "b\r\nc: d")], None, T).is_err());
    }
}
