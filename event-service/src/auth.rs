//! Ingest authentication: which configured token sent a request, the sources it may send for
//! and its rate limit.
//!
//! Every token of `auth.tokens` is built once at start into a [`Token`]: its `sources`
//! patterns and, when it has `events_per_sec`, one direct `governor` limiter. Nothing here is
//! keyed by client input, so memory is bounded by the configuration, and metric labels are
//! the tokens' configured names or indices, never a source a client sent.

use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use event_model::ingest::ErrorBody;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{InsufficientCapacity, Quota, RateLimiter};

use crate::config::{AuthConfig, LimitsConfig};
use crate::metrics::{Metrics, TokenLabels};
use crate::publish::Checked;
use crate::state::AppState;

/// Metric `reason` of a request refused because of an event's source.
const SOURCE_NOT_ALLOWED: &str = "source_not_allowed";
/// Metric `reason` of a request refused because its token is over its rate.
const RATE_LIMITED: &str = "rate_limited";
/// Metric `reason` of a request with more events than its token's burst.
const OVER_BURST: &str = "over_burst";

/// Longest part of a client's source quoted back in a message or a log line.
const MAX_QUOTED: usize = 128;

/// The configured tokens, ready to check requests against.
pub(crate) struct Tokens {
    tokens: Vec<Token>,
    allow_unauthenticated: bool,
}

/// One configured token: what it may send for and how fast.
pub(crate) struct Token {
    secret: String,
    label: String,
    sources: Option<Vec<Pattern>>,
    limit: Option<Limit>,
}

/// A `sources` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    fn new(p: &str) -> Self {
        match p.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(p.to_owned()),
        }
    }

    /// Whether the token may send for `source`; an empty source never matches.
    fn matches(&self, source: &str) -> bool {
        !source.is_empty()
            && match self {
                Pattern::Exact(name) => source == name,
                Pattern::Prefix(prefix) => source.starts_with(prefix.as_str()),
            }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Exact(name) => f.write_str(name),
            Pattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// A token's rate limit: one direct limiter counting events.
struct Limit<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    per_sec: NonZeroU32,
    burst: NonZeroU32,
}

/// Why a limiter refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    /// More events than the burst: never admitted.
    Burst,
    /// Over the rate: admitted after this wait at the earliest.
    Rate(Duration),
}

impl<C: Clock> Limit<C> {
    fn with_clock(per_sec: NonZeroU32, burst: NonZeroU32, clock: C) -> Self {
        let quota = Quota::per_second(per_sec).allow_burst(burst);
        Limit { limiter: RateLimiter::direct_with_clock(quota, clock), per_sec, burst }
    }

    /// Takes `events` from the limiter, all or none.
    fn take(&self, events: usize) -> Result<(), Over> {
        if events == 0 {
            return Ok(());
        }
        let n = u32::try_from(events).ok().and_then(NonZeroU32::new).ok_or(Over::Burst)?;
        match self.limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Over::Rate(not_until.wait_time_from(self.limiter.clock().now()))),
            Err(InsufficientCapacity(_)) => Err(Over::Burst),
        }
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Compares in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who sent a request.
pub(crate) enum Caller<'a> {
    /// No token, with `auth.allow_unauthenticated`: any source, no limit.
    Anonymous,
    /// This configured token.
    Token(&'a Token),
}

/// Which token authenticated the request, or `None` (401) without a valid bearer token.
pub(crate) fn authorized<'a>(state: &'a AppState, headers: &HeaderMap) -> Option<Caller<'a>> {
    state.tokens.authenticate(headers)
}

impl Tokens {
    /// Builds every configured token (the configuration is validated) and registers its
    /// refusal counters at 0, so they exist before the first refusal.
    pub(crate) fn new(auth: &AuthConfig, limits: &LimitsConfig, metrics: &Metrics) -> Self {
        let tokens = auth
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let label = t.label(i);
                let sources = t.sources.as_ref().map(|s| s.iter().map(|p| Pattern::new(p)).collect());
                let limit = match (t.events_per_sec.and_then(NonZeroU32::new), t.effective_burst(limits)) {
                    (Some(per_sec), Some(burst)) => {
                        let burst = NonZeroU32::new(burst).unwrap_or(per_sec);
                        Some(Limit::with_clock(per_sec, burst, DefaultClock::default()))
                    }
                    _ => None,
                };
                let count = |reason: &str| {
                    drop(metrics.token_refusals.get_or_create(&TokenLabels::new(&label, reason)));
                };
                // Every configured token's counters exist at 0, so the series (and the alert
                // on them) are there before the first refusal, bound tokens or not.
                for reason in [SOURCE_NOT_ALLOWED, RATE_LIMITED, OVER_BURST] {
                    count(reason);
                }
                Token { secret: t.token.clone(), label, sources, limit }
            })
            .collect();
        Tokens { tokens, allow_unauthenticated: auth.allow_unauthenticated }
    }

    /// The token of the request's `Authorization: Bearer` header. Every token is compared, so
    /// the time taken does not tell which one matched.
    fn authenticate(&self, headers: &HeaderMap) -> Option<Caller<'_>> {
        if self.allow_unauthenticated && self.tokens.is_empty() {
            return Some(Caller::Anonymous);
        }
        let Some(presented) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        else {
            return self.allow_unauthenticated.then_some(Caller::Anonymous);
        };
        let presented = presented.trim().as_bytes();
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(t.secret.as_bytes(), presented) && found.is_none() {
                found = Some(t);
            }
        }
        found.map(Caller::Token)
    }
}

impl Caller<'_> {
    /// Admits a validated request, or answers it: 403 when an event's source is not one the
    /// token may send for (or the event has none and the token is bound), 413 when it has more
    /// events than the token's burst, 429 with `Retry-After` when the token is over its rate.
    /// Nothing of a refused request is published; refusals are counted per token.
    ///
    /// Sources are checked on the valid events, those that would be published to their
    /// topics; rejected events carry no source that could be trusted to be read.
    pub(crate) fn admit(&self, checked: &Checked, metrics: &Metrics) -> Result<(), Refused> {
        let Caller::Token(token) = self else { return Ok(()) };
        let refuse = |reason: &str| {
            metrics.token_refusals.get_or_create(&TokenLabels::new(&token.label, reason)).inc();
        };
        if let Some(patterns) = &token.sources {
            let mut refused = checked
                .accepted
                .iter()
                .map(|(_, e)| e)
                .filter(|e| !patterns.iter().any(|p| p.matches(&e.source)));
            if let Some(first) = refused.next() {
                refuse(SOURCE_NOT_ALLOWED);
                let count = 1 + refused.count();
                let allowed = patterns.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                let quoted: String = first.source.chars().take(MAX_QUOTED).collect();
                tracing::warn!(
                    token = %token.label,
                    source = %quoted,
                    events = count,
                    "request refused: the token may not send for this source"
                );
                let what = if first.source.is_empty() {
                    "an event with no source".to_owned()
                } else {
                    format!("source `{quoted}`")
                };
                return Err(Refused::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "token `{}` may not send for {what} ({count} of {} events); it may send for: {allowed}",
                        token.label,
                        checked.accepted.len() + checked.rejected.len(),
                    ),
                ));
            }
        }
        if let Some(limit) = &token.limit {
            let events = checked.accepted.len() + checked.rejected.len();
            match limit.take(events) {
                Ok(()) => {}
                Err(Over::Burst) => {
                    refuse(OVER_BURST);
                    return Err(Refused::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "{events} events in one request; token `{}` may send at most {} at once (its burst_events), split the request",
                            token.label, limit.burst
                        ),
                    ));
                }
                Err(Over::Rate(wait)) => {
                    refuse(RATE_LIMITED);
                    let secs = retry_after_secs(wait);
                    tracing::debug!(token = %token.label, events, wait_ms = wait.as_millis(), "token over its rate");
                    let mut r = Refused::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "token `{}` is over its rate of {} events/s; retry in {secs} s",
                            token.label, limit.per_sec
                        ),
                    );
                    r.retry_after_secs = Some(secs);
                    return Err(r);
                }
            }
        }
        Ok(())
    }
}

/// A refused request: its status and message, answered with the contract's error body.
#[derive(Debug)]
pub(crate) struct Refused {
    status: StatusCode,
    message: String,
    retry_after_secs: Option<u64>,
}

impl Refused {
    fn new(status: StatusCode, message: String) -> Self {
        Refused { status, message, retry_after_secs: None }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = serde_json::to_string(&ErrorBody { error: self.message }).unwrap_or_default();
        let mut r =
            (self.status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
                .into_response();
        if let Some(secs) = self.retry_after_secs {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("tokens", &self.tokens)
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .finish()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("label", &self.label)
            .field("sources", &self.sources)
            .field("events_per_sec", &self.limit.as_ref().map(|l| l.per_sec))
            .field("burst_events", &self.limit.as_ref().map(|l| l.burst))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, TokenConfig};
    use event_model::Event;
    use governor::clock::FakeRelativeClock;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
    }

    #[test]
    fn token_comparison_is_exact() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
    }

    #[test]
    fn patterns_are_exact_names_or_prefixes() {
        let exact = Pattern::new("web-1");
        assert!(exact.matches("web-1"));
        assert!(!exact.matches("web-10") && !exact.matches("web-") && !exact.matches(""));
        let prefix = Pattern::new("web-*");
        assert!(prefix.matches("web-1") && prefix.matches("web-eu-7") && prefix.matches("web-"));
        assert!(!prefix.matches("web") && !prefix.matches("db-web-1") && !prefix.matches(""));
        let any = Pattern::new("*");
        assert!(any.matches("x") && !any.matches(""), "`*` is any source, but not none");
        assert_eq!((exact.to_string(), prefix.to_string()), ("web-1".to_owned(), "web-*".to_owned()));
    }

    #[test]
    fn a_limiter_admits_a_burst_then_the_rate_all_or_nothing() {
        let clock = FakeRelativeClock::default();
        let limit = Limit::with_clock(nz(10), nz(10), clock.clone());
        assert_eq!(limit.take(0), Ok(()), "an empty request costs nothing");
        assert_eq!(limit.take(10), Ok(()));
        assert_eq!(limit.take(10), Err(Over::Rate(Duration::from_secs(1))));
        assert_eq!(limit.take(11), Err(Over::Burst), "more than the burst never fits");
        clock.advance(Duration::from_millis(500));
        assert_eq!(limit.take(10), Err(Over::Rate(Duration::from_millis(500))), "nothing was taken");
        assert_eq!(limit.take(5), Ok(()), "half a second refilled 5");
        clock.advance(Duration::from_secs(1));
        assert_eq!(limit.take(10), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).expect("header"));
        h
    }

    fn checked(sources: &[&str]) -> Checked {
        Checked {
            accepted: sources
                .iter()
                .enumerate()
                .map(|(i, s)| (i, Event { source: (*s).into(), ..Default::default() }))
                .collect(),
            rejected: Vec::new(),
        }
    }

    #[test]
    fn the_token_that_matched_brings_its_bindings() {
        let mut config = Config::default();
        config.auth.tokens = vec![
            TokenConfig::new("plain-token-0123456789"),
            TokenConfig::new("web-token-0123456789").with_name("web").with_sources(["web-1", "app-*"]),
        ];
        config.validate().expect("valid");
        let metrics = Metrics::new();
        let tokens = Tokens::new(&config.auth, &config.limits, &metrics);
        assert!(tokens.authenticate(&HeaderMap::new()).is_none(), "no header");
        assert!(tokens.authenticate(&headers("web-token-012345678")).is_none(), "a prefix of a token");
        let Some(plain) = tokens.authenticate(&headers("plain-token-0123456789")) else {
            panic!("plain token refused")
        };
        assert!(plain.admit(&checked(&["db-1", ""]), &metrics).is_ok(), "unbound: anything");
        let Some(web) = tokens.authenticate(&headers(" web-token-0123456789 ")) else {
            panic!("web token refused")
        };
        assert!(web.admit(&checked(&["web-1", "app-eu-1"]), &metrics).is_ok());
        let refused = web.admit(&checked(&["web-1", "db-1", "db-2"]), &metrics).expect_err("db-1");
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.message.contains("`db-1` (2 of 3 events)"), "{}", refused.message);
        let refused = web.admit(&checked(&[""]), &metrics).expect_err("no source");
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.message.contains("an event with no source"), "{}", refused.message);
        let text = metrics.render();
        assert!(
            text.contains(
                "event_service_token_refusals_total{token=\"web\",reason=\"source_not_allowed\"} 2"
            ),
            "{text}"
        );
        assert!(!format!("{tokens:?}").contains("token-0123456789"), "Debug never shows a token");
    }

    #[test]
    fn without_tokens_and_with_allow_unauthenticated_anyone_sends_anything() {
        let auth = AuthConfig { allow_unauthenticated: true, ..Default::default() };
        let metrics = Metrics::new();
        let tokens = Tokens::new(&auth, &LimitsConfig::default(), &metrics);
        let caller = tokens.authenticate(&HeaderMap::new()).expect("anonymous");
        assert!(caller.admit(&checked(&["any"]), &metrics).is_ok());
    }
}
