package deliveryfn

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dispatcher-dev/dispatcher/internal/testkit/templatedir"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// base is the least environment the relay starts with.
var base = map[string]string{"TABLE_NAME": "t", "EVENTS_QUEUE_URL": "q", "DLQ_URL": "d", "SENDER_ADDRESS": "no-reply@example.com"}

func with(kv ...string) map[string]string {
	m := maps.Clone(base)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		check   func(Config) bool // nil: nothing beyond success
		wantErr string
	}{
		{"no EMAIL_LEASE_SECONDS leaves the engine's default (2 minutes)", base, func(c Config) bool { return c.Delivery.Lease == 0 }, ""},
		{"EMAIL_LEASE_SECONDS sets the lease", with("EMAIL_LEASE_SECONDS", "90"), func(c Config) bool { return c.Delivery.Lease == 90*time.Second }, ""},
		{"a lease under 1 s is refused", with("EMAIL_LEASE_SECONDS", "0.5"), nil, "EMAIL_LEASE_SECONDS"},
		{"a lease of 0 is refused", with("EMAIL_LEASE_SECONDS", "0"), nil, `EMAIL_LEASE_SECONDS="0" must be a whole number from 1 to 3600`},
		{"a lease over an hour is refused", with("EMAIL_LEASE_SECONDS", "3601"), nil, "EMAIL_LEASE_SECONDS"},
		{"a lease that is not a number is refused", with("EMAIL_LEASE_SECONDS", "2m"), nil, "EMAIL_LEASE_SECONDS"},
		{"names every missing variable", map[string]string{}, nil, "TABLE_NAME is required; EVENTS_QUEUE_URL is required; DLQ_URL is required; SENDER_ADDRESS is required"},
		{"refuses a sender that is not an address", with("SENDER_ADDRESS", "nobody"), nil, "SENDER_ADDRESS is not a valid email address"},

		// The sender and its identities (SENDER_IDENTITIES, template parameter SenderIdentities): the relay
		// refuses at cold start a From that IAM would refuse with AccessDenied, which fails every email.
		{"an address alone is its own identity", base, func(c Config) bool { return c.Delivery.Sender == "no-reply@example.com" }, ""},
		{"takes a display name and keeps it in the From", with("SENDER_ADDRESS", "Shop <no-reply@shop.example>", "SENDER_IDENTITIES", "shop.example"),
			func(c Config) bool { return c.Delivery.Sender == `"Shop" <no-reply@shop.example>` }, ""},
		{"encodes a display name that is not ASCII", with("SENDER_ADDRESS", "Café Ada <no-reply@example.com>"),
			func(c Config) bool { return c.Delivery.Sender == "=?utf-8?q?Caf=C3=A9_Ada?= <no-reply@example.com>" }, ""},
		{"a display name's address is its own identity", with("SENDER_ADDRESS", "Shop <no-reply@example.com>"), nil, ""},
		{"a domain identity covers the address", with("SENDER_IDENTITIES", "example.com"), nil, ""},
		{"an address identity covers the address", with("SENDER_IDENTITIES", "other.example, NO-REPLY@example.com"), nil, ""},
		{"refuses a sender no identity covers", with("SENDER_IDENTITIES", "shop.example,ops@example.com"), nil,
			"SENDER_ADDRESS no-reply@example.com is not covered by SENDER_IDENTITIES shop.example,ops@example.com"},
		{"a parent domain does not cover a subdomain", with("SENDER_ADDRESS", "a@mail.example.com", "SENDER_IDENTITIES", "example.com"), nil, "is not covered"},
		{"refuses an identity that is neither an address nor a domain", with("SENDER_IDENTITIES", "example.com,localhost"), nil, `SENDER_IDENTITIES "localhost"`},
		{"refuses an empty identity in the list", with("SENDER_IDENTITIES", "example.com,"), nil, `SENDER_IDENTITIES ""`},
		{"refuses a display name without an address", with("SENDER_ADDRESS", "Shop <>"), nil, "SENDER_ADDRESS is not"},
		{"refuses a display name with a line break", with("SENDER_ADDRESS", "\"Shop\r\nBcc: x@y.z\" <no-reply@example.com>"), nil, "SENDER_ADDRESS is not"},

		{"reads RELAY_WORKERS", with("RELAY_WORKERS", "32"), func(c Config) bool { return c.Delivery.Workers == 32 }, ""},
		{"reads RELAY_MAX_SEND_ATTEMPTS", with("RELAY_MAX_SEND_ATTEMPTS", "20"), func(c Config) bool { return c.Delivery.MaxSendAttempts == 20 }, ""},
		{"reads OUTBOX_RETENTION_DAYS", with("OUTBOX_RETENTION_DAYS", "30"), func(c Config) bool { return c.Delivery.KeepDelivered == 30*24*time.Hour }, ""},
		{"reads UNDELIVERED_INDEX_SHARDS", with("UNDELIVERED_INDEX_SHARDS", "1"), func(c Config) bool { return c.Shards == 1 }, ""},
		{"defaults to 8 shards", base, func(c Config) bool { return c.Shards == 8 }, ""},
		{"leaves the engine's defaults when nothing is set", base, func(c Config) bool {
			return c.Delivery.Workers == 0 && c.Delivery.MaxSendAttempts == 0 && c.Delivery.KeepDelivered == 0
		}, ""},
		{"divides the default send rate (14/s) by RELAY_EXPECTED_CONCURRENCY", with("RELAY_EXPECTED_CONCURRENCY", "4"), func(c Config) bool { return c.Delivery.EmailRate == 3.5 }, ""},
		{"takes a fractional SES_ACCOUNT_SEND_RATE", with("SES_ACCOUNT_SEND_RATE", "0.5"), func(c Config) bool { return c.Delivery.EmailRate == 0.5 }, ""},
		{"reads LOG_LEVEL", with("LOG_LEVEL", "debug"), func(c Config) bool { return c.LogLevel.String() == "DEBUG" }, ""},

		{"refuses RELAY_WORKERS=1.5", with("RELAY_WORKERS", "1.5"), nil, `RELAY_WORKERS="1.5" must be a whole number from 1 to 256`},
		{"refuses RELAY_WORKERS=0", with("RELAY_WORKERS", "0"), nil, `RELAY_WORKERS="0" must be a whole number from 1 to 256`},
		{"refuses RELAY_WORKERS=257", with("RELAY_WORKERS", "257"), nil, `RELAY_WORKERS="257" must be a whole number from 1 to 256`},
		{"refuses RELAY_WORKERS=1e2", with("RELAY_WORKERS", "1e2"), nil, `RELAY_WORKERS="1e2" must be a whole number from 1 to 256`},
		{"refuses RELAY_MAX_SEND_ATTEMPTS=2.5", with("RELAY_MAX_SEND_ATTEMPTS", "2.5"), nil, `RELAY_MAX_SEND_ATTEMPTS="2.5" must be a whole number from 1 to 20`},
		{"refuses RELAY_MAX_SEND_ATTEMPTS=21", with("RELAY_MAX_SEND_ATTEMPTS", "21"), nil, `RELAY_MAX_SEND_ATTEMPTS="21" must be a whole number from 1 to 20`},
		{"refuses OUTBOX_RETENTION_DAYS=1.5", with("OUTBOX_RETENTION_DAYS", "1.5"), nil, `OUTBOX_RETENTION_DAYS="1.5" must be a whole number from 1 to 365`},
		{"refuses OUTBOX_RETENTION_DAYS=366", with("OUTBOX_RETENTION_DAYS", "366"), nil, `OUTBOX_RETENTION_DAYS="366" must be a whole number from 1 to 365`},
		{"refuses EMAIL_LEASE_SECONDS=1.5", with("EMAIL_LEASE_SECONDS", "1.5"), nil, `EMAIL_LEASE_SECONDS="1.5" must be a whole number from 1 to 3600`},
		{"refuses UNDELIVERED_INDEX_SHARDS=1.5", with("UNDELIVERED_INDEX_SHARDS", "1.5"), nil, `UNDELIVERED_INDEX_SHARDS="1.5" must be a whole number from 1 to 64`},
		{"refuses UNDELIVERED_INDEX_SHARDS=65", with("UNDELIVERED_INDEX_SHARDS", "65"), nil, `UNDELIVERED_INDEX_SHARDS="65" must be a whole number from 1 to 64`},
		{"refuses RELAY_EXPECTED_CONCURRENCY=1.5", with("RELAY_EXPECTED_CONCURRENCY", "1.5"), nil, `RELAY_EXPECTED_CONCURRENCY="1.5" must be a whole number from 1 to 1000`},
		{"refuses RELAY_EXPECTED_CONCURRENCY=1001", with("RELAY_EXPECTED_CONCURRENCY", "1001"), nil, `RELAY_EXPECTED_CONCURRENCY="1001" must be a whole number from 1 to 1000`},
		{"refuses SES_ACCOUNT_SEND_RATE=0.05", with("SES_ACCOUNT_SEND_RATE", "0.05"), nil, `SES_ACCOUNT_SEND_RATE="0.05" must be a number from 0.1 to 100000`},
		{"refuses SES_ACCOUNT_SEND_RATE=NaN", with("SES_ACCOUNT_SEND_RATE", "NaN"), nil, `SES_ACCOUNT_SEND_RATE="NaN" must be a number from 0.1 to 100000`},
		{"refuses an unknown LOG_LEVEL", with("LOG_LEVEL", "LOUD"), nil, `LOG_LEVEL="LOUD" must be DEBUG, INFO, WARN or ERROR`},
		{"names every problem at once", with("RELAY_WORKERS", "1.5", "OUTBOX_RETENTION_DAYS", "7.5"), nil, `RELAY_WORKERS="1.5" must be a whole number from 1 to 256; OUTBOX_RETENTION_DAYS="7.5"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadConfig(envOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil && !tt.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}

// Build checks the environment before it builds anything; it makes no call.
func TestBuild(t *testing.T) {
	cfg := aws.Config{Region: "us-east-1"}
	if h, err := Build(context.Background(), cfg, envOf(base)); err != nil || h == nil {
		t.Fatalf("Build = %v, %v; want a handler", h, err)
	}
	_, err := Build(context.Background(), cfg, envOf(with("RELAY_WORKERS", "1.5")))
	if err == nil || !strings.Contains(err.Error(), "RELAY_WORKERS") {
		t.Fatalf("err = %v, want it to name RELAY_WORKERS", err)
	}
}

// The relay's cold start reads EMAIL_TEMPLATES_DIR: each template's sender
// comes from it, and a broken folder stops the init naming the file and line.
func TestLoadConfigReadsTheTemplateFolder(t *testing.T) {
	c, err := LoadConfig(envOf(base))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Delivery.Senders.For("notification", "no-reply@example.com"); got.From != "no-reply@example.com" {
		t.Errorf("built-in sender = %+v, want SENDER_ADDRESS", got)
	}
	user := templatedir.Write(t, templatedir.User(t))
	// The role may not send as the folder's shop sender: a cold-start error
	// naming it, not AccessDenied on each of its emails.
	_, err = LoadConfig(envOf(with("EMAIL_TEMPLATES_DIR", user)))
	if err == nil || !strings.Contains(err.Error(), "orders@shop.example") || !strings.Contains(err.Error(), "SENDER_IDENTITIES") {
		t.Fatalf("LoadConfig = %v, want the uncovered sender named", err)
	}
	c, err = LoadConfig(envOf(with("EMAIL_TEMPLATES_DIR", user, "SENDER_IDENTITIES", "no-reply@example.com,shop.example")))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Delivery.Senders.For(templatedir.UserTemplate, "no-reply@example.com"); got.From != `"Shop" <orders@shop.example>` {
		t.Errorf("the user's sender = %+v", got)
	}
	dir := templatedir.Write(t, templatedir.Broken(t))
	_, err = Build(context.Background(), aws.Config{Region: "us-east-1"}, envOf(with("EMAIL_TEMPLATES_DIR", dir)))
	if want := fmt.Sprintf("%s:%d: ", filepath.Join(dir, templatedir.BrokenFile), templatedir.BrokenLine); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Build = %v, want it to name %s", err, want)
	}
}
