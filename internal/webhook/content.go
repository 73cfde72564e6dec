package webhook

import "net/http"

// SignedContent returns what a request's signature covers in the place of
// Standard Webhooks' "body" (signed as "id.timestamp.content"):
//
//   - for a POST, the raw body, exactly as Standard Webhooks signs it;
//   - for any other method (the API's reads, which have no body), the request
//     line "METHOD rawPath", followed by "?rawQuery" when the raw query is not
//     empty: the method as sent, the path and the query string exactly as
//     sent (percent-encoding, parameter order and repeats untouched), with no
//     trailing newline, e.g. "GET /v1/aggregates/acct-1/outbox?limit=10".
//
// Without the request line, a GET (empty body) would sign only its id and
// timestamp, and its signature would read any path for five minutes.
// Nothing is normalized: the sender signs the bytes it sends, the receiver
// checks the bytes it got, so the two can never disagree on a canonical form.
func SignedContent(method, rawPath, rawQuery string, body []byte) []byte {
	if method == http.MethodPost {
		return body
	}
	line := method + " " + rawPath
	if rawQuery != "" {
		line += "?" + rawQuery
	}
	return []byte(line)
}
