//! `sipsteer ctl`: a running instance's admin API from the command line. Finds the API and
//! its token (flags, `SIPSTEER_TOKEN`, or the main config file), sends one request through
//! `admin::client`, prints the reply as text (`show`) or as the API's JSON (`--json`), and
//! maps the result to an exit code for scripts ([`Exit`]).

mod show;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::admin::client::{self, Reply, Verb};
use crate::cli::{CtlArgs, CtlCommand, Forcing};

/// Exit codes of `sipsteer ctl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// The API answered that the request failed: a reload refused, a state file not written,
    /// an answer ctl cannot read.
    Failed = 1,
    /// Bad input: on the command line, in the config file, or a server or value the API
    /// does not know.
    BadInput = 2,
    /// The admin API did not answer (nothing listening, no reply within 5 s).
    Unreachable = 3,
    /// The token was missing or wrong, or the API takes no changes (no token configured).
    Refused = 4,
}

/// A failure: its exit code and what to print.
type Failure = (Exit, String);

/// Where the admin API is and what token to send.
struct Target {
    base: String,
    token: Option<String>,
}

/// Runs one command; prints its result (stdout) or the failure (stderr).
pub async fn run(args: CtlArgs) -> Exit {
    match execute(&args).await {
        Ok(text) => {
            print!("{text}");
            Exit::Ok
        }
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            code
        }
    }
}

async fn execute(args: &CtlArgs) -> Result<String, Failure> {
    let target = target(args)?;
    let json = args.json;
    match &args.command {
        CtlCommand::Status => {
            let v = call(&target, Verb::Get, "/v1/status", None).await?;
            Ok(out(json, &v, show::status))
        }
        CtlCommand::Servers => {
            let v = call(&target, Verb::Get, "/v1/servers", None).await?;
            Ok(out(json, &v, show::servers))
        }
        CtlCommand::Drain(f) => force(&target, json, "drain", f).await,
        CtlCommand::Down(f) => force(&target, json, "down", f).await,
        CtlCommand::Up(f) => force(&target, json, "up", f).await,
        CtlCommand::Undrain { server } => {
            let path = state_path(server, "state")?;
            let body = json!({ "state": "clear" });
            let v = call(&target, Verb::Put, &path, Some(body)).await?;
            Ok(out(json, &v, show::server))
        }
        CtlCommand::Load { server, calls, cps } => {
            let path = state_path(server, "load")?;
            let body = json!({ "calls": calls, "cps": cps });
            let v = call(&target, Verb::Put, &path, Some(body)).await?;
            Ok(out(json, &v, show::server))
        }
        CtlCommand::Reload => {
            let v = call(&target, Verb::Post, "/v1/reload", Some(json!({}))).await?;
            Ok(out(json, &v, show::reload))
        }
        CtlCommand::Explain {
            client,
            ecs,
            name,
            rtype,
        } => {
            for (what, text) in [("name", name), ("type", rtype)] {
                if !text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-*".contains(&b))
                {
                    return Err((
                        Exit::BadInput,
                        format!("{what} `{text}` is not a DNS {what}"),
                    ));
                }
            }
            let mut path = format!("/v1/explain?client={client}&name={name}&type={rtype}");
            if let Some(e) = ecs {
                path.push_str(&format!("&ecs={e}"));
            }
            if json {
                let v = call(&target, Verb::Get, &path, None).await?;
                return Ok(out(true, &v, |_| String::new()));
            }
            path.push_str("&format=text");
            let reply = send(&target, Verb::Get, &path, None).await?;
            checked(reply)
        }
        CtlCommand::Events {
            since,
            follow: true,
            ..
        } => follow(&target, json, *since).await,
        CtlCommand::Events { since, limit, .. } => {
            let mut path = format!("/v1/events?since={since}");
            if let Some(l) = limit {
                path.push_str(&format!("&limit={l}"));
            }
            let v = call(&target, Verb::Get, &path, None).await?;
            Ok(out(json, &v, show::events))
        }
    }
}

/// `events --follow`: the events after `since`, then each new one, polled every second, until
/// the process is interrupted or the API stops answering. With `--json`, one event a line.
async fn follow(target: &Target, json: bool, mut since: u64) -> Result<String, Failure> {
    use std::io::Write as _;
    loop {
        let v = call(
            target,
            Verb::Get,
            &format!("/v1/events?since={since}"),
            None,
        )
        .await?;
        let text = if json {
            let mut s = String::new();
            for e in v["events"].as_array().into_iter().flatten() {
                s.push_str(&e.to_string());
                s.push('\n');
            }
            s
        } else {
            show::events(&v)
        };
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            // The reader went away (a closed pipe): done.
            return Ok(String::new());
        }
        drop(out);
        since = v["next"].as_u64().unwrap_or(since);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// The reply as JSON (pretty, one object) or as text.
fn out(json: bool, v: &Value, text: impl Fn(&Value) -> String) -> String {
    if json {
        let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
        s.push('\n');
        s
    } else {
        text(v)
    }
}

/// `drain`, `down` or `up` with an optional end and note.
async fn force(target: &Target, json: bool, state: &str, f: &Forcing) -> Result<String, Failure> {
    let path = state_path(&f.server, "state")?;
    let mut body = json!({ "state": state });
    if let Some(u) = &f.until {
        body["until"] = Value::String(until(u));
    }
    if let Some(n) = &f.note {
        body["note"] = Value::String(n.clone());
    }
    let v = call(target, Verb::Put, &path, Some(body)).await?;
    Ok(out(json, &v, show::server))
}

/// `--until`: a duration from now (`90m`) becomes the RFC 3339 time it ends; anything else
/// goes to the API as written, which reads it (or says why not).
fn until(text: &str) -> String {
    match humantime::parse_duration(text) {
        Ok(d) => humantime::format_rfc3339_seconds(SystemTime::now() + d).to_string(),
        Err(_) => text.to_owned(),
    }
}

/// `/v1/servers/REGION/SERVER/{what}` for `REGION/SERVER`.
fn state_path(server: &str, what: &str) -> Result<String, Failure> {
    let ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    match server.split_once('/') {
        Some((r, s)) if ok(r) && ok(s) => Ok(format!("/v1/servers/{r}/{s}/{what}")),
        _ => Err((
            Exit::BadInput,
            format!("`{server}` is not REGION/SERVER (e.g. uk/lon1)"),
        )),
    }
}

/// Where the admin API is: `--addr`, or `listen.admin` of the config file (an unspecified
/// address is reached on loopback). The token: `--token` or `SIPSTEER_TOKEN`, else the
/// config's.
fn target(args: &CtlArgs) -> Result<Target, Failure> {
    if let Some(a) = &args.addr {
        let base = if a.starts_with("http://") {
            a.trim_end_matches('/').to_owned()
        } else {
            format!("http://{a}")
        };
        return Ok(Target {
            base,
            token: args.token.clone(),
        });
    }
    let access =
        crate::config::admin_access(&args.config).map_err(|e| (Exit::BadInput, e.to_string()))?;
    let Some(addr) = access.addr else {
        return Err((
            Exit::BadInput,
            format!(
                "the admin API is off in {} (listen.admin); use --addr",
                args.config.display()
            ),
        ));
    };
    Ok(Target {
        base: format!("http://{}", reachable(addr)),
        token: args.token.clone().or(access.token),
    })
}

/// A listen address as a client reaches it: 0.0.0.0 and [::] on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// One request; the reply whatever its status, or why there was none.
async fn send(
    target: &Target,
    verb: Verb,
    path: &str,
    body: Option<Value>,
) -> Result<Reply, Failure> {
    let token = if verb == Verb::Get {
        None
    } else {
        target.token.as_deref()
    };
    client::send(&target.base, verb, path, token, body.map(|b| b.to_string()))
        .await
        .map_err(|e| {
            let code = if e.unreachable() {
                Exit::Unreachable
            } else if matches!(e, client::ClientError::BadUrl(_)) {
                Exit::BadInput
            } else {
                Exit::Failed
            };
            (code, error_chain(&e))
        })
}

/// One request whose 200 reply is JSON.
async fn call(
    target: &Target,
    verb: Verb,
    path: &str,
    body: Option<Value>,
) -> Result<Value, Failure> {
    let reply = send(target, verb, path, body).await?;
    let text = checked(reply)?;
    serde_json::from_str(&text).map_err(|e| {
        (
            Exit::Failed,
            format!("the admin API sent a reply that is not json: {e}"),
        )
    })
}

/// The body of a 200 reply; any other status as the failure it stands for, with the API's
/// `error` (and a refused reload's problems).
fn checked(reply: Reply) -> Result<String, Failure> {
    if reply.status == 200 {
        return Ok(reply.body);
    }
    let code = match reply.status {
        401 | 403 => Exit::Refused,
        400 | 404 | 405 | 413 => Exit::BadInput,
        _ => Exit::Failed,
    };
    let said = serde_json::from_str::<Value>(&reply.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| reply.body.trim().to_owned());
    Err((code, format!("admin api answered {}: {said}", reply.status)))
}

/// An error with its sources, as `anyhow` prints `{:#}`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
