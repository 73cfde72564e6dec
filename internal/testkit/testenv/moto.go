package testenv

import "context"

// motoSentEmails reads the emails moto's SES backend keeps, from its
// /moto-api/data.json view of every model instance. moto keeps a Simple
// email's subject, one body (the HTML part when there is one, else the text)
// and the destinations; it drops the headers (see MotoKeepsNoEmailHeaders).
func motoSentEmails(ctx context.Context, base string) ([]SentEmail, error) {
	var data struct {
		SES struct {
			Message []struct {
				ID           string `json:"id"`
				Source       string `json:"source"`
				Subject      string `json:"subject"`
				Body         string `json:"body"`
				Destinations struct {
					To  []string `json:"ToAddresses"`
					Cc  []string `json:"CcAddresses"`
					Bcc []string `json:"BccAddresses"`
				} `json:"destinations"`
			} `json:"Message"`
		} `json:"ses"`
	}
	if err := getJSON(ctx, base+"/moto-api/data.json", &data); err != nil {
		return nil, err
	}
	out := make([]SentEmail, 0, len(data.SES.Message))
	for _, m := range data.SES.Message {
		var e SentEmail
		e.MessageID, e.From, e.Subject = m.ID, m.Source, m.Subject
		e.Destination.To, e.Destination.Cc, e.Destination.Bcc = m.Destinations.To, m.Destinations.Cc, m.Destinations.Bcc
		e.Body.HTML = m.Body
		out = append(out, e)
	}
	return out, nil
}
