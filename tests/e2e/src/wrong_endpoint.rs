//! A plain HTTP server that is not the event-service, for the scenario where the tailer's
//! `service.url` points at the wrong place ([`Scenario::with_wrong_endpoint`]).
//!
//! It answers every request, whatever its method and path, the same way ([`WrongAnswer`]) and
//! counts them. It never reads what was sent: the point is only that nothing it says may be
//! taken for the event-service's acknowledgement.
//!
//! [`Scenario::with_wrong_endpoint`]: crate::Scenario::with_wrong_endpoint

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{Error, Result};

/// The page nginx answers to plain HTTP sent to its TLS port.
const HTML_400: &str = "<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n\
<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n\
<center>The plain HTTP request was sent to HTTPS port</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// How a [`WrongEndpoint`] answers every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrongAnswer {
    /// `200` with the JSON body `{}`, as any JSON API, health endpoint or mock might answer.
    /// A tailer that takes any `200` for an acknowledgement checkpoints every line and the
    /// event-service receives none.
    EmptyObject,
    /// `400` with an HTML page (nginx's "The plain HTTP request was sent to HTTPS port"), as
    /// a TLS port spoken to in plain HTTP answers. A tailer that takes any `400` for the
    /// event-service's "bad batch" splits the batch down to single events and drops each.
    Html400,
}

impl fmt::Display for WrongAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WrongAnswer::EmptyObject => "200 {}",
            WrongAnswer::Html400 => "HTML 400",
        })
    }
}

impl WrongAnswer {
    fn response(self) -> Response {
        match self {
            WrongAnswer::EmptyObject => {
                (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{}").into_response()
            }
            WrongAnswer::Html400 => (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/html"), (header::CONNECTION, "close")],
                HTML_400,
            )
                .into_response(),
        }
    }
}

/// A running wrong endpoint on `127.0.0.1`. Dropping it stops it.
#[derive(Debug)]
pub struct WrongEndpoint {
    answer: WrongAnswer,
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl WrongEndpoint {
    /// Starts a server answering every request with `answer`, on a free port.
    ///
    /// # Errors
    /// [`Error::Process`] when no port can be bound.
    pub async fn start(answer: WrongAnswer) -> Result<WrongEndpoint> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Process(format!("wrong endpoint: cannot bind 127.0.0.1:0: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Process(format!("wrong endpoint: no local address: {e}")))?;
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let app = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                answer.response()
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(WrongEndpoint { answer, addr, requests, task })
    }

    /// How it answers.
    pub fn answer(&self) -> WrongAnswer {
        self.answer
    }

    /// The URL a misconfigured tailer would have as `service.url`, e.g.
    /// `http://127.0.0.1:41234/v1/events` (any path gets the same answer).
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, event_model::ingest::PATH)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for WrongEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_every_request_its_way_and_counts_them() {
        let http = reqwest::Client::new();
        let ok = WrongEndpoint::start(WrongAnswer::EmptyObject).await.expect("start");
        let r = http.post(ok.url()).body("x").send().await.expect("post");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("body"), "{}");
        let html = WrongEndpoint::start(WrongAnswer::Html400).await.expect("start");
        let r = http.get(format!("{}/anything", html.url())).send().await.expect("get");
        assert_eq!(r.status(), 400);
        assert!(r.text().await.expect("body").contains("plain HTTP request was sent to HTTPS port"));
        assert_eq!((ok.requests(), html.requests()), (1, 1));
    }
}
