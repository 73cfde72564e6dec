package dispatch

import (
	"fmt"
	"github.com/dispatcher-dev/dispatcher/outbox"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The reference domain of the dual-write literature: a bank account whose
// every change publishes an event and emails its owner.

// AccountType is the aggregate type of accounts.
const AccountType = "Account"

// The account commands' email templates.
const (
	TemplateAccountWelcome    = "account-welcome"
	TemplateDepositReceipt    = "deposit-receipt"
	TemplateWithdrawalReceipt = "withdrawal-receipt"
)

// account is the state of an Account aggregate.
type account struct {
	Owner    string `json:"owner"`
	Email    string `json:"email"`
	Currency string `json:"currency"`
	Balance  int64  `json:"balance"` // minor units
}

// OpenAccount creates an account.
type OpenAccount struct {
	Owner    string `json:"owner"`
	Email    string `json:"email"`
	Currency string `json:"currency"`
}

// Validate implements Command.
func (c *OpenAccount) Validate() []FieldError {
	var fe []FieldError
	if msg := checkText(c.Owner, 100); msg != "" {
		fe = append(fe, FieldError{"owner", msg})
	}
	if addr, err := ParseAddress(c.Email); err != nil {
		fe = append(fe, FieldError{"email", err.Error()})
	} else {
		c.Email = addr
	}
	if !isCurrency(c.Currency) {
		fe = append(fe, FieldError{"currency", currencyMessage})
	}
	return fe
}

// CreatesAggregate implements Creator.
func (c *OpenAccount) CreatesAggregate() bool { return true }

// Decide implements Command.
func (c *OpenAccount) Decide(cur Aggregate, _ time.Time) (Decision, error) {
	if cur.Exists() {
		return Decision{}, E("OpenAccount", Conflict, "the account is already open", nil)
	}
	data, err := encodeData(account{Owner: c.Owner, Email: c.Email, Currency: c.Currency})
	if err != nil {
		return Decision{}, err
	}
	return Decision{
		AggregateType: AccountType,
		Data:          data,
		// The address is the owner's personal data: the fold needs it, the
		// events queue's consumers do not get it.
		Events: []Event{{Type: "AccountOpened", Data: map[string]any{"owner": c.Owner, "currency": c.Currency},
			Private: map[string]any{"email": c.Email}}},
		Emails: []Email{{To: []string{c.Email}, Template: TemplateAccountWelcome, Data: map[string]any{
			"owner": c.Owner, "accountId": cur.ID, "currency": c.Currency,
		}}},
	}, nil
}

// Movement is the data of a deposit or a withdrawal.
type Movement struct {
	Amount    int64  `json:"amount"` // minor units
	Currency  string `json:"currency"`
	Reference string `json:"reference"`
}

func (m *Movement) validate() []FieldError {
	var fe []FieldError
	if m.Amount <= 0 || m.Amount > MaxAmountMinor {
		fe = append(fe, FieldError{"amount", fmt.Sprintf("must be a whole number of minor units from 1 to %d", int64(MaxAmountMinor))})
	}
	if !isCurrency(m.Currency) {
		fe = append(fe, FieldError{"currency", currencyMessage})
	}
	if msg := checkText(m.Reference, 128); msg != "" {
		fe = append(fe, FieldError{"reference", msg})
	}
	return fe
}

// DepositFunds adds money to an account.
type DepositFunds struct{ Movement }

// Validate implements Command.
func (c *DepositFunds) Validate() []FieldError { return c.validate() }

// Decide implements Command.
func (c *DepositFunds) Decide(cur Aggregate, _ time.Time) (Decision, error) {
	return move(cur, c.Movement, +1)
}

// WithdrawFunds takes money from an account; it never overdraws.
type WithdrawFunds struct{ Movement }

// Validate implements Command.
func (c *WithdrawFunds) Validate() []FieldError { return c.validate() }

// Decide implements Command.
func (c *WithdrawFunds) Decide(cur Aggregate, _ time.Time) (Decision, error) {
	return move(cur, c.Movement, -1)
}

func move(cur Aggregate, m Movement, sign int64) (Decision, error) {
	op, event, tmpl := "DepositFunds", "FundsDeposited", TemplateDepositReceipt
	if sign < 0 {
		op, event, tmpl = "WithdrawFunds", "FundsWithdrawn", TemplateWithdrawalReceipt
	}
	if !cur.Exists() || cur.Type != AccountType {
		return Decision{}, E(op, NotFound, "no such account", nil)
	}
	var acc account
	if err := decodeData(cur.Data, &acc); err != nil {
		return Decision{}, E(op, Internal, "", fmt.Errorf("decode account state: %w", err))
	}
	if m.Currency != acc.Currency {
		return Decision{}, UnprocessableField("data.currency", "the account is in %s", acc.Currency)
	}
	if sign < 0 && m.Amount > acc.Balance {
		return Decision{}, UnprocessableField("data.amount", "the withdrawal would overdraw the account (balance %s %s)", FormatMinor(acc.Balance, acc.Currency), acc.Currency)
	}
	if sign > 0 && acc.Balance > MaxAmountMinor-m.Amount {
		return Decision{}, UnprocessableField("data.amount", "the balance would exceed %d minor units", int64(MaxAmountMinor))
	}
	acc.Balance += sign * m.Amount
	data, err := encodeData(acc)
	if err != nil {
		return Decision{}, err
	}
	eventData := map[string]any{
		"amount": m.Amount, "currency": m.Currency, "reference": m.Reference, "balance": acc.Balance,
	}
	return Decision{
		AggregateType: AccountType,
		Data:          data,
		Events:        []Event{{Type: event, Data: eventData}},
		Emails: []Email{{To: []string{acc.Email}, Template: tmpl, Data: map[string]any{
			"owner": acc.Owner, "accountId": cur.ID, "currency": m.Currency, "reference": m.Reference,
			"amount": FormatMinor(m.Amount, m.Currency), "balance": FormatMinor(acc.Balance, m.Currency),
		}}},
	}, nil
}

// FormatMinor formats an amount in minor units for people: 1234 EUR is
// "12.34", 1234 JPY "1234". A code that is no longer a currency (one ISO
// withdrew after an account was opened in it) gets two decimals.
func FormatMinor(amount int64, currency string) string {
	digits, ok := currencyDecimals[currency]
	if !ok {
		digits = 2
	}
	neg := amount < 0
	abs := uint64(amount)
	if neg {
		abs = uint64(-(amount + 1)) + 1 // no overflow at math.MinInt64
	}
	s := strconv.FormatUint(abs, 10)
	if digits > 0 {
		for len(s) <= digits {
			s = "0" + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// ParseAddress checks one recipient by what SES sends to and returns it
// bare (outbox.ParseAddress).
func ParseAddress(s string) (string, error) { return outbox.ParseAddress(s) }

// checkText checks a required one-line text field.
func checkText(s string, max int) string {
	switch {
	case strings.TrimSpace(s) == "":
		return "is required"
	case utf8.RuneCountInString(s) > max:
		return fmt.Sprintf("must be at most %d characters", max)
	case hasControl(s):
		return "must not contain control characters (CR, LF, tab, ...)"
	}
	// It ends up in email subjects and bodies, where an override would make
	// it read as something else.
	if r, ok := bidiControl(s); ok {
		return fmt.Sprintf("must not contain bidirectional override or isolate characters (found %U)", r)
	}
	return ""
}
