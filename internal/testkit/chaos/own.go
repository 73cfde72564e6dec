package chaos

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
	"github.com/dispatcher-dev/dispatcher/outbox"
)

// OwnTable is the row of a user's own service: it does not go through the
// command API, it writes its own state to its own table (key accountId)
// and, in the same TransactWriteItems, the outbox items outbox.Writer.Items
// gives it; the stack's relay delivers them.
const OwnTable = "own-table"

// ownTries bounds the attempts of one transaction (the first and its
// retries, all with the same ClientRequestToken): more than the schedule's
// longest burst (6) and its odds after it.
const ownTries = 10

// ownService is the user's service of the own-table row. Its DynamoDB
// client goes through the run's DynamoDB faults proxy, with the SDK's
// retries off, so that every injected fault reaches its code: it retries a
// transaction itself, with the same input and the same ClientRequestToken,
// as long as the outcome is unknown or the error transient; a retry that
// meets its own version condition (the first attempt committed and the
// token was not honoured) or the last try failing make it re-read its own
// item, which says whether this command committed (it records its key
// there). The service crashes (stops, answering nothing) at seeded
// commands (the schedule's crash rate) right after its first attempt,
// applied or not: the client of such a command cannot know.
type ownService struct {
	db    *dynamodb.Client // through the faults proxy
	table string           // the user's table
	w     outbox.Writer
	crash crashes

	// seen are the effects of the transactions the service saw commit
	// (answered to its client): event id -> target.
	seen map[string]string
	// What the service went through.
	commands int
	retried  int // transactions retried after an unknown or transient outcome
	byToken  int // committed by a retry after a lost answer: the token honoured
	reread   int // outcomes decided by re-reading the own item
}

func newOwnService(ctx context.Context, t testing.TB, env *testenv.Env, proxy, outboxTable string, sched *Schedule, seed uint64) *ownService {
	t.Helper()
	table := fmt.Sprintf("cx-own-%d-%d", seed, time.Now().UnixNano()%1e9)
	admin := dynamodb.NewFromConfig(env.AWS)
	if _, err := admin.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("accountId"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("accountId"), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}
	cfg := env.AWS.Copy()
	cfg.RetryMaxAttempts = 1
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(proxy) })
	return &ownService{db: db, table: table, w: outbox.Writer{Table: outboxTable},
		crash: crashes{rng: sched.Rand("own-table crash"), rate: sched.Rates.Crash}, seen: map[string]string{}}
}

// ownOutcome is what the service's client was told of one command.
type ownOutcome int

const (
	ownCommitted ownOutcome = iota // the service saw it commit
	ownRefused                     // a deposit to an account that is not open
	ownFailed                      // the service knows it did not commit
	ownUnknown                     // the service crashed: no answer
)

// apply runs one step of the plan: an opening (n = 0) or the n-th deposit.
func (s *ownService) apply(ctx context.Context, st step) (ownOutcome, error) {
	key := st.key()
	var (
		version int64
		own     ddbtypes.TransactWriteItem
		effects []outbox.Effect
	)
	if st.n == 0 {
		version = 1
		own = ddbtypes.TransactWriteItem{Put: &ddbtypes.Put{TableName: aws.String(s.table), Item: map[string]ddbtypes.AttributeValue{
			"accountId":   &ddbtypes.AttributeValueMemberS{Value: st.agg.ID},
			"email":       &ddbtypes.AttributeValueMemberS{Value: st.agg.Email},
			"balance":     &ddbtypes.AttributeValueMemberN{Value: "0"},
			"version":     &ddbtypes.AttributeValueMemberN{Value: "1"},
			"lastCommand": &ddbtypes.AttributeValueMemberS{Value: key},
		}, ConditionExpression: aws.String("attribute_not_exists(accountId)")}}
		effects = []outbox.Effect{
			outbox.Event{Type: "AccountOpened", Data: map[string]any{"accountId": st.agg.ID, "email": st.agg.Email}},
			outbox.Email{To: []string{st.agg.Email}, Template: "welcome", Subject: "Welcome", Text: "Your account " + st.agg.ID + " is open."},
		}
	} else {
		cur, err := s.read(ctx, st.agg.ID)
		if err != nil {
			return ownFailed, err
		}
		if cur == nil {
			return ownRefused, nil
		}
		read := num(cur, "version")
		version = read + 1
		amount := 100 * st.n
		own = ddbtypes.TransactWriteItem{Update: &ddbtypes.Update{TableName: aws.String(s.table),
			Key:                 map[string]ddbtypes.AttributeValue{"accountId": &ddbtypes.AttributeValueMemberS{Value: st.agg.ID}},
			UpdateExpression:    aws.String("SET version = :next, balance = balance + :amount, lastCommand = :key"),
			ConditionExpression: aws.String("version = :read"),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
				":read": &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(read, 10)}, ":next": &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(version, 10)},
				":amount": &ddbtypes.AttributeValueMemberN{Value: strconv.Itoa(amount)}, ":key": &ddbtypes.AttributeValueMemberS{Value: key},
			}}}
		effects = []outbox.Effect{
			outbox.Event{Type: "FundsDeposited", Data: map[string]any{"accountId": st.agg.ID, "amount": amount}},
			outbox.Email{To: []string{st.agg.Email}, Template: "deposit-receipt", Subject: "Deposit received", Text: fmt.Sprintf("%d deposited to %s.", amount, st.agg.ID)},
		}
	}
	items, ids, err := s.w.Items(outbox.Aggregate{Type: "Account", ID: st.agg.ID, Version: version}, effects...)
	if err != nil {
		return ownFailed, err
	}
	in := &dynamodb.TransactWriteItemsInput{TransactItems: append([]ddbtypes.TransactWriteItem{own}, items...), ClientRequestToken: aws.String(outbox.NewEventID(time.Now()))}
	out, err := s.commit(ctx, in, st.agg.ID, key, version)
	if out == ownCommitted {
		for i, id := range ids {
			s.seen[id] = []string{"events", "email"}[i]
		}
	}
	return out, err
}

// commit sends one transaction until its outcome is known.
func (s *ownService) commit(ctx context.Context, in *dynamodb.TransactWriteItemsInput, agg, key string, version int64) (ownOutcome, error) {
	s.commands++
	unknown := false // an earlier attempt may have applied
	lost := false    // an earlier attempt's answer was lost (no AWS answer at all)
	for try := range ownTries {
		_, err := s.db.TransactWriteItems(ctx, in)
		// The first command never crashes: its answer is lost (the run's
		// forced fault), and the service must find out by retrying.
		if try == 0 && s.commands > 1 && s.crash.now() {
			return ownUnknown, nil
		}
		var apiErr smithy.APIError
		switch {
		case err == nil:
			if lost {
				s.byToken++
			}
			return ownCommitted, nil
		case conditionFailed(err):
			if !unknown {
				return ownFailed, fmt.Errorf("%s: version %d: %w", key, version, err)
			}
			return s.decide(ctx, agg, key, version)
		}
		if try == 0 {
			s.retried++
		}
		unknown = true // a lost answer, a 5xx: applied or not; a throttle: not, and retrying is as safe
		lost = lost || !errors.As(err, &apiErr)
		time.Sleep(min(time.Second, time.Duration(50<<try)*time.Millisecond))
	}
	return s.decide(ctx, agg, key, version)
}

// decide re-reads the own item: the command committed if the item is at
// its version and names its key (the service is the aggregate's only
// writer, one command at a time, so nothing moved it on since).
func (s *ownService) decide(ctx context.Context, agg, key string, version int64) (ownOutcome, error) {
	s.reread++
	cur, err := s.read(ctx, agg)
	if err != nil {
		return ownFailed, err
	}
	if cur != nil && num(cur, "version") == version {
		if v, ok := cur["lastCommand"].(*ddbtypes.AttributeValueMemberS); ok && v.Value == key {
			return ownCommitted, nil
		}
	}
	return ownFailed, nil
}

// read is a consistent read of an account's own item, nil if none.
func (s *ownService) read(ctx context.Context, agg string) (map[string]ddbtypes.AttributeValue, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), ConsistentRead: aws.Bool(true),
		Key: map[string]ddbtypes.AttributeValue{"accountId": &ddbtypes.AttributeValueMemberS{Value: agg}}})
	if err != nil {
		return nil, err
	}
	return out.Item, nil
}

// version is an account's version in the own table (0: never opened).
func (s *ownService) version(ctx context.Context, t testing.TB, agg string) int64 {
	t.Helper()
	cur, err := s.read(ctx, agg)
	if err != nil {
		t.Fatal(err)
	}
	return num(cur, "version")
}

// conditionFailed reports a transaction cancelled by a condition of its
// own (not a conflict or a throttle, which are transient).
func conditionFailed(err error) bool {
	var tce *ddbtypes.TransactionCanceledException
	if !errors.As(err, &tce) {
		return false
	}
	for _, r := range tce.CancellationReasons {
		if aws.ToString(r.Code) == "ConditionalCheckFailed" {
			return true
		}
	}
	return false
}

// ownStep applies one step with the user's service and counts what its
// client was told, as the other rows count the command API's answers.
func ownStep(t testing.TB, ctx context.Context, own *ownService, s step, row *Row, a *answered, refused map[string]int) {
	t.Helper()
	out, err := own.apply(ctx, s)
	if err != nil {
		t.Errorf("own-table %s: %v", s.key(), err)
	}
	switch out {
	case ownCommitted:
		row.Accepted++
		a.accepted++
	case ownUnknown:
		row.Unanswered++
		a.unanswered++
	case ownRefused:
		row.Refused++
		refused[s.agg.ID]++
	case ownFailed:
		row.OwnFailed++
	}
}
