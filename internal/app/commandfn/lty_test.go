package commandfn

import (
	"slices"
	"strings"
	"testing"
)

func TestListenToYourselfConfiguration(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    []string
		errHas  string
		wantURL string
	}{
		{"is off by default", map[string]string{"TABLE_NAME": "t"}, nil, "", ""},
		{"reads the command types and the queue", map[string]string{"TABLE_NAME": "t", "LISTEN_TO_YOURSELF": "DepositFunds, WithdrawFunds", "COMMANDS_QUEUE_URL": "http://q/x.fifo"},
			[]string{"DepositFunds", "WithdrawFunds"}, "", "http://q/x.fifo"},
		{"refuses an unknown command type", map[string]string{"TABLE_NAME": "t", "LISTEN_TO_YOURSELF": "Deposit", "COMMANDS_QUEUE_URL": "q"}, nil, "unknown command type", ""},
		{"needs the queue when on", map[string]string{"TABLE_NAME": "t", "LISTEN_TO_YOURSELF": "DepositFunds"}, nil, "COMMANDS_QUEUE_URL", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(envOf(tt.env))
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err %v, want one saying %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.ListenToYourself, tt.want) || c.CommandsQueueURL != tt.wantURL {
				t.Errorf("got %v %q", c.ListenToYourself, c.CommandsQueueURL)
			}
		})
	}
}
