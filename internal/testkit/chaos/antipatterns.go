package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Cmd is one command of a run: open an account, which changes its state and
// must be followed by one event and one email.
type Cmd struct {
	ID    string // the aggregate id
	Email string
}

// EventID and EmailID are the ids the anti-patterns give a command's two
// effects; a duplicate delivery of one effect carries the same id.
func (c Cmd) EventID() string { return c.ID + "-event" }
func (c Cmd) EmailID() string { return c.ID + "-email" }

// Clients are the faulted AWS clients an anti-pattern writes with.
type Clients struct {
	DB    *dynamodb.Client
	SQS   *sqs.Client
	SES   *sesv2.Client
	Table string
	Queue string // the events queue (FIFO)
}

// Strategy applies commands; Finish ends the run (the anti-patterns have no
// recovery, so it only flushes what a strategy keeps in memory).
type Strategy interface {
	Apply(ctx context.Context, c Cmd)
	Finish(ctx context.Context)
}

func (cl *Clients) putState(ctx context.Context, c Cmd) error {
	_, err := cl.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(cl.Table), Item: stateItem(c)})
	return err
}

func (cl *Clients) transactState(ctx context.Context, c Cmd) error {
	_, err := cl.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
		{Put: &ddbtypes.Put{TableName: aws.String(cl.Table), Item: stateItem(c)}},
	}})
	return err
}

func stateItem(c Cmd) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{
		"pk": &ddbtypes.AttributeValueMemberS{Value: "AGG#" + c.ID}, "sk": &ddbtypes.AttributeValueMemberS{Value: "STATE"},
		"version": &ddbtypes.AttributeValueMemberN{Value: "1"}, "chaos": &ddbtypes.AttributeValueMemberBOOL{Value: true},
	}
}

func (cl *Clients) sendEvent(ctx context.Context, c Cmd) error {
	body, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": c.EventID(), "type": "AccountOpened", "source": "chaos", "subject": c.ID, "aggregateversion": 1})
	_, err := cl.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(cl.Queue), MessageBody: aws.String(string(body)),
		MessageGroupId: aws.String(c.ID), MessageDeduplicationId: aws.String(c.EventID())})
	return err
}

func (cl *Clients) sendEmail(ctx context.Context, c Cmd) error {
	_, err := cl.SES.SendEmail(ctx, &sesv2.SendEmailInput{
		FromEmailAddress: aws.String("noreply@example.com"),
		Destination:      &sestypes.Destination{ToAddresses: []string{c.Email}},
		Content: &sestypes.EmailContent{Simple: &sestypes.Message{
			Subject: &sestypes.Content{Data: aws.String("Welcome")},
			Body:    &sestypes.Body{Text: &sestypes.Content{Data: aws.String("Your account is open.")}},
			Headers: []sestypes.MessageHeader{{Name: aws.String("X-Dispatcher-Event-Id"), Value: aws.String(c.EmailID())}},
		}},
	})
	return err
}

// crashes draws, per command, whether the process dies between two steps.
type crashes struct {
	rng  *rand.Rand
	rate float64
}

func (c crashes) now() bool { return c.rng.Float64() < c.rate }

// DBThenSend writes the state, then sends the event and the email. A crash
// or a failed send after the write loses them; a write whose response was
// lost is believed failed, and its effects are never sent.
type DBThenSend struct {
	Cl    *Clients
	crash crashes
}

func (s *DBThenSend) Apply(ctx context.Context, c Cmd) {
	if s.Cl.putState(ctx, c) != nil || s.crash.now() {
		return
	}
	if s.Cl.sendEvent(ctx, c) != nil {
		return
	}
	_ = s.Cl.sendEmail(ctx, c)
}

func (s *DBThenSend) Finish(context.Context) {}

// SendThenDB sends the event and the email, then writes the state. A crash
// or a failed write after a send invents an event for nothing.
type SendThenDB struct {
	Cl    *Clients
	crash crashes
}

func (s *SendThenDB) Apply(ctx context.Context, c Cmd) {
	if s.Cl.sendEvent(ctx, c) != nil || s.Cl.sendEmail(ctx, c) != nil || s.crash.now() {
		return
	}
	_ = s.Cl.putState(ctx, c)
}

func (s *SendThenDB) Finish(context.Context) {}

// SendInTx sends inside a "transaction": the sends happen while it is open
// and the state is committed last with TransactWriteItems; any error rolls
// the transaction back, but nothing can unsend what is already out.
type SendInTx struct {
	Cl    *Clients
	crash crashes
}

func (s *SendInTx) Apply(ctx context.Context, c Cmd) {
	err := s.Cl.sendEvent(ctx, c)
	if err == nil {
		err = s.Cl.sendEmail(ctx, c)
	}
	if err == nil && s.crash.now() {
		err = errors.New("crashed before commit")
	}
	if err != nil {
		return // rollback: the state is not written
	}
	_ = s.Cl.transactState(ctx, c)
}

func (s *SendInTx) Finish(context.Context) {}

// MemoryRetry writes the state and answers; the sends are retried from
// memory, a few times, by a background flush every few commands. A process
// restart (at a seeded point of a flush) drops whatever is still in memory.
type MemoryRetry struct {
	Cl      *Clients
	rng     *rand.Rand
	rate    float64 // chance that a flush is cut short by a restart
	Every   int
	Tries   int
	pending []Cmd
}

func (s *MemoryRetry) Apply(ctx context.Context, c Cmd) {
	if s.Cl.putState(ctx, c) != nil {
		return
	}
	s.pending = append(s.pending, c)
	if len(s.pending) >= s.Every {
		s.flush(ctx)
	}
}

func (s *MemoryRetry) Finish(ctx context.Context) { s.flush(ctx) }

func (s *MemoryRetry) flush(ctx context.Context) {
	crashAt := -1
	if s.rng.Float64() < s.rate {
		crashAt = s.rng.IntN(len(s.pending) + 1)
	}
	for i, c := range s.pending {
		if i == crashAt {
			break
		}
		s.retry(ctx, func() error { return s.Cl.sendEvent(ctx, c) })
		s.retry(ctx, func() error { return s.Cl.sendEmail(ctx, c) })
	}
	s.pending = nil
}

func (s *MemoryRetry) retry(ctx context.Context, send func() error) {
	for i := range s.Tries {
		if send() == nil {
			return
		}
		time.Sleep(time.Duration(i+1) * 2 * time.Millisecond)
	}
}

// AntiPatterns returns the four anti-patterns, by name, for a schedule.
func AntiPatterns(cl *Clients, s *Schedule) []Named {
	c := func(name string) crashes { return crashes{rng: s.Rand(name + " crash"), rate: s.Rates.Crash} }
	return []Named{
		{"DB then send", &DBThenSend{Cl: cl, crash: c("db-then-send")}},
		{"send then DB", &SendThenDB{Cl: cl, crash: c("send-then-db")}},
		{"send in rolled-back tx", &SendInTx{Cl: cl, crash: c("send-in-tx")}},
		{"in-memory retry", &MemoryRetry{Cl: cl, rng: s.Rand("memory-retry crash"), rate: 4 * s.Rates.Crash, Every: 5, Tries: 3}},
	}
}

// Named is a strategy and its name in the table.
type Named struct {
	Name string
	S    Strategy
}
