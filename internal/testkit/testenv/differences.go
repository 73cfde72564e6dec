package testenv

import (
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
)

// Difference is one known way a backend departs from AWS. A test skips the
// one assertion that depends on it, by name, and runs the rest:
//
//	if !testenv.Skip(t, testenv.MotoKeepsNoEmailHeaders) {
//		// the assertion that needs the headers
//	}
//
// docs/local.md lists every Difference under its name (a test checks).
type Difference struct {
	Name    string
	Backend emulator.Backend
	Why     string
}

// The differences of moto 5.2.5 from AWS that a test here depends on.
var (
	MotoKeepsNoEmailHeaders = Difference{"MotoKeepsNoEmailHeaders", emulator.MotoServer,
		"moto's SES v2 SendEmail keeps a Simple email's subject, one body (the HTML part if there is one) and the destinations, and drops Content.Simple.Headers and the other body, so a test cannot read an email's X-Dispatcher-* headers or its text part back"}
	MotoKeepsNoReplyTo = Difference{"MotoKeepsNoReplyTo", emulator.MotoServer,
		"moto's SES v2 SendEmail keeps the From (display name included) but drops ReplyToAddresses, so a test cannot read an email's Reply-To back"}

	MotoReturnsNoConsumedCapacity = Difference{"MotoReturnsNoConsumedCapacity", emulator.MotoServer,
		"moto's TransactWriteItems answers ReturnConsumedCapacity=TOTAL with no ConsumedCapacity, so the WCU a commit reports reads 0"}
	MotoIgnoresClientRequestToken = Difference{"MotoIgnoresClientRequestToken", emulator.MotoServer,
		"moto ignores TransactWriteItems' ClientRequestToken: a retry of a committed transaction is evaluated again and fails its version condition, where AWS answers it as the first call for 10 minutes"}
	MotoServesNoGetAccount = Difference{"MotoServesNoGetAccount", emulator.MotoServer,
		"moto's SES v2 has no GetAccount (GET /v2/email/account answers 404), so a relay on moto cannot read the account's send quota and paces at SES_ACCOUNT_SEND_RATE, with a WARN line"}
	MotoAcceptsAnyMessageCharacter = Difference{"MotoAcceptsAnyMessageCharacter", emulator.MotoServer,
		"moto's SQS accepts any character in a message body; AWS refuses those outside #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF with InvalidMessageContents"}
)

// Differences lists them all (docs/local.md names each).
var Differences = []Difference{MotoKeepsNoEmailHeaders, MotoKeepsNoReplyTo, MotoReturnsNoConsumedCapacity, MotoIgnoresClientRequestToken, MotoAcceptsAnyMessageCharacter, MotoServesNoGetAccount}

// Skip reports whether the backend under test has the difference d, and if
// so logs that the assertion is skipped and why; the caller then leaves
// that assertion out and goes on with the rest of the test.
func Skip(t testing.TB, d Difference) bool {
	t.Helper()
	env := Get(t)
	if env.Emulators.Backend() != d.Backend {
		return false
	}
	t.Logf("assertion skipped on %s: %s: %s (docs/local.md)", d.Backend, d.Name, d.Why)
	return true
}

// Backend says what serves the AWS APIs in this test binary.
func (e *Env) Backend() emulator.Backend { return e.Emulators.Backend() }
