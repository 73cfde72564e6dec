package orders

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/aws/aws-lambda-go/events"
)

// Handler is the place-order Lambda behind an API Gateway HTTP API:
// POST a JSON Order, get 201 with the event ids, or a problem.
type Handler struct {
	Orders *Service
	Log    *slog.Logger
}

// Placed is the answer to a placed order.
type Placed struct {
	OrderID  string   `json:"orderId"`
	EventIDs []string `json:"eventIds"`
}

// PlaceOrder answers every request with a status and never returns an
// error: bad input is a 400, an order placed before a 409, a DynamoDB
// failure a 500 that is logged (its detail stays in the log).
func (h Handler) PlaceOrder(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	body := []byte(req.Body)
	if req.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(req.Body)
		if err != nil {
			return problem(http.StatusBadRequest, "the body is not valid base64"), nil
		}
		body = b
	}
	var o Order
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil || dec.More() {
		return problem(http.StatusBadRequest, `the body must be one JSON object: {"orderId","email","name","total"}`), nil
	}
	ids, err := h.Orders.PlaceOrder(ctx, o)
	if err != nil {
		var e *Error
		errors.As(err, &e)
		switch KindOf(err) {
		case Invalid:
			return problem(http.StatusBadRequest, e.Msg), nil
		case AlreadyPlaced, Conflict:
			return problem(http.StatusConflict, e.Msg), nil
		}
		h.Log.ErrorContext(ctx, "place order failed", "orderId", o.ID, "error", err)
		return problem(http.StatusInternalServerError, "the order could not be placed; try again"), nil
	}
	h.Log.InfoContext(ctx, "order placed", "orderId", o.ID, "eventIds", ids)
	out, _ := json.Marshal(Placed{OrderID: o.ID, EventIDs: ids})
	return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusCreated, Headers: map[string]string{"Content-Type": "application/json"}, Body: string(out)}, nil
}

// problem is an RFC 9457 problem answer.
func problem(status int, detail string) events.APIGatewayV2HTTPResponse {
	body, _ := json.Marshal(map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
	return events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: map[string]string{"Content-Type": "application/problem+json"}, Body: string(body)}
}
