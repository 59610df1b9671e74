//! The HTTPS probe and the HTML pages of a SoftEther port
//! (PROTOCOL-NOTES.md §3.2, §3.5).
//!
//! Before its first connection to a non-local address the real client sends
//! `GET /` (with `X-VPN: 1`) and goes on only if the body's first 1023
//! bytes start with SoftEther's 403 page or contain [`MARKER`]; the status
//! code is not checked. A hub answers with [`index_page`], which carries
//! the marker in an HTML comment, and keeps the connection open.

/// The string the client looks for in the probe's answer.
pub const MARKER: &str = "9C37197CA7C2428388C2E6E59B829B30";
/// The start of SoftEther's 403 page, the probe's other pass condition.
pub const FORBIDDEN_PREFIX: &str = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\r\n<HTML><HEAD>\r\n<TITLE>403 Forbidden</TITLE>\r\n</HEAD><BODY>\r\n<H1>Forbidden</H1>\r\nYou don't have permission to access ";
/// How much of the body the client examines.
pub const PROBE_WINDOW: usize = 1023;
/// Largest probe answer body the client reads (`Content-Length` 1..=this).
pub const MAX_PROBE_BODY: usize = 1_048_575;
/// The content type of the pages.
pub const HTML_CONTENT_TYPE: &str = "text/html; charset=iso-8859-1";

/// Whether a probe answer's body passes the real client's check.
pub fn is_softether_page(body: &[u8]) -> bool {
    let window = &body[..body.len().min(PROBE_WINDOW)];
    window.starts_with(FORBIDDEN_PREFIX.as_bytes())
        || window.windows(MARKER.len()).any(|w| w == MARKER.as_bytes())
}

/// The page for `GET /`: the marker in a comment on the first line, then
/// `html` (the hub's own page, any size). Passes [`is_softether_page`]
/// whatever `html` holds.
pub fn index_page(html: &str) -> Vec<u8> {
    let mut page = format!("<!-- {MARKER} -->\r\n").into_bytes();
    page.extend_from_slice(html.as_bytes());
    page
}

/// The default `html` of [`index_page`].
pub const DEFAULT_INDEX_HTML: &str = "<!DOCTYPE html>\r\n<html><head><title>vhub</title></head>\r\n<body><p>This is a VPN server: connect with a VPN client.</p></body></html>\r\n";

/// Replaces `<` and `>` by `(` and `)`, as SoftEther does before it echoes a
/// request target into a page, and drops control characters.
fn sanitize(s: &str) -> String {
    s.chars()
        .take(256)
        .filter(|c| !c.is_control())
        .map(|c| match c {
            '<' => '(',
            '>' => ')',
            c => c,
        })
        .collect()
}

/// A 403 page in SoftEther's form (it starts with [`FORBIDDEN_PREFIX`]).
pub fn forbidden_page(target: &str) -> Vec<u8> {
    format!(
        "{FORBIDDEN_PREFIX}{}\r\non this server.\r\n</BODY></HTML>\r\n",
        sanitize(target)
    )
    .into_bytes()
}

/// A 404 page.
pub fn not_found_page(target: &str) -> Vec<u8> {
    format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\r\n<HTML><HEAD>\r\n<TITLE>404 Not Found</TITLE>\r\n</HEAD><BODY>\r\n<H1>Not Found</H1>\r\nThe requested URL {} was not found on this server.\r\n</BODY></HTML>\r\n",
        sanitize(target)
    )
    .into_bytes()
}

/// A 501 page.
pub fn not_implemented_page(method: &str, target: &str) -> Vec<u8> {
    let (m, t) = (sanitize(method), sanitize(target));
    format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\r\n<HTML><HEAD>\r\n<TITLE>501 Method Not Implemented</TITLE>\r\n</HEAD><BODY>\r\n<H1>Method Not Implemented</H1>\r\n{m} to {t} not supported.<P>\r\nInvalid method in request {m} {t} HTTP/1.1<P>\r\n</BODY></HTML>\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_conditions_of_the_real_client() {
        assert!(is_softether_page(&index_page(DEFAULT_INDEX_HTML)));
        assert!(is_softether_page(&index_page(&"x".repeat(100_000))));
        assert!(is_softether_page(&forbidden_page("/")));
        // The marker must be within the first 1023 bytes.
        let mut late = vec![b' '; PROBE_WINDOW - MARKER.len()];
        late.extend_from_slice(MARKER.as_bytes());
        assert!(is_softether_page(&late));
        late.insert(0, b' ');
        assert!(!is_softether_page(&late));
        assert!(!is_softether_page(b"<html>hello</html>"));
        assert!(!is_softether_page(b""));
        // The 403 prefix must be at the start.
        assert!(!is_softether_page(
            format!(" {FORBIDDEN_PREFIX}").as_bytes()
        ));
    }

    #[test]
    fn pages_do_not_echo_markup() {
        let p = String::from_utf8(not_found_page("/<script>\r\n")).unwrap();
        assert!(p.contains("/(script)"));
        assert!(!p.contains("<script>"));
        let p = String::from_utf8(not_implemented_page("PUT", "/")).unwrap();
        assert!(p.contains("PUT to / not supported"));
    }
}
