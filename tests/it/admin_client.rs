//! The admin API client of `explain --live` against small HTTP servers on loopback: a chunked
//! reply whose chunks split multi-byte characters, a reply over the size bound, an error
//! status.

use std::io::{Read, Write};
use std::net::TcpListener;

use sipsteer::admin::client;

/// Serves one connection with `reply` (written in the given pieces) and returns the base url.
fn serve_once(pieces: Vec<Vec<u8>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&b[..n]),
            }
        }
        for p in pieces {
            if s.write_all(&p).is_err() {
                return;
            }
            s.flush().ok();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    format!("http://{addr}")
}

/// `text` as HTTP chunks of `size` bytes, cutting through characters.
fn chunked(text: &str, size: usize) -> Vec<Vec<u8>> {
    let mut out = vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()];
    for c in text.as_bytes().chunks(size) {
        let mut piece = format!("{:x}\r\n", c.len()).into_bytes();
        piece.extend_from_slice(c);
        piece.extend_from_slice(b"\r\n");
        out.push(piece);
    }
    out.push(b"0\r\n\r\n".to_vec());
    out
}

#[tokio::test]
async fn multibyte_characters_split_across_chunks_arrive_whole() {
    let text = r#"{"servers":[{"region":"zürich","server":"łódź-1","state":"up","note":"日本"}]}"#;
    // Chunks of 3 bytes cut "ü", "ł", "ó", "ź" and "日本" in the middle.
    let base = serve_once(chunked(text, 3));
    let body = client::get(&base, "/v1/servers").await.expect("reply");
    assert_eq!(body, text);
}

#[tokio::test]
async fn a_reply_over_the_size_bound_is_refused() {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        client::MAX_BODY + 1
    );
    let base = serve_once(vec![head.into_bytes(), vec![b'x'; 4096]]);
    let err = client::get(&base, "/v1/servers")
        .await
        .expect_err("too large");
    assert!(
        err.to_string()
            .contains("cannot read the reply of 127.0.0.1:"),
        "{err:#}"
    );
}

#[tokio::test]
async fn an_error_status_and_a_bad_url_are_reported() {
    let base = serve_once(vec![
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ]);
    let err = client::get(&base, "/v1/servers").await.expect_err("503");
    assert!(
        err.to_string()
            .contains("answered 503 Service Unavailable to /v1/servers"),
        "{err:#}"
    );
    let err = client::get("https://127.0.0.1:8053", "/v1/servers")
        .await
        .expect_err("https");
    assert_eq!(
        err.to_string(),
        "admin url `https://127.0.0.1:8053` must look like http://127.0.0.1:8053"
    );
}
