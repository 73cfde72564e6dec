package faults

import (
	"bytes"
	"io"
	"net/http"
)

// BodyContains matches requests whose body contains substr, such as one
// recipient's address in an SES SendEmail. The body is read through GetBody
// when the request offers it, or buffered and restored, so that the request
// still goes out whole.
func BodyContains(substr string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		var rc io.ReadCloser
		if r.GetBody != nil {
			b, err := r.GetBody()
			if err != nil {
				return false
			}
			rc = b
		} else if r.Body != nil {
			buf, err := io.ReadAll(r.Body)
			r.Body.Close()
			if err != nil {
				return false
			}
			r.Body = io.NopCloser(bytes.NewReader(buf))
			rc = io.NopCloser(bytes.NewReader(buf))
		} else {
			return false
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return err == nil && bytes.Contains(b, []byte(substr))
	}
}

// All matches requests that every matcher matches.
func All(ms ...func(*http.Request) bool) func(*http.Request) bool {
	return func(r *http.Request) bool {
		for _, m := range ms {
			if !m(r) {
				return false
			}
		}
		return true
	}
}
