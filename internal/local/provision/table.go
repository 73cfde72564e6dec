package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func (p *provisioner) table(ctx context.Context, id string, props map[string]any) (*Resource, error) {
	res := &Resource{Attributes: map[string]string{}}
	name, _ := props["TableName"].(string)
	if name == "" {
		name = generatedName(p.stack.Eval.StackName(), id, 255)
	}
	in := &dynamodb.CreateTableInput{TableName: aws.String(name)}
	handled := map[string]bool{}
	use := func(k string) (any, bool) {
		v, ok := props[k]
		handled[k] = true
		return v, ok
	}
	if v, ok := use("AttributeDefinitions"); ok {
		if err := decode(v, &in.AttributeDefinitions); err != nil {
			return nil, fmt.Errorf("AttributeDefinitions: %w", err)
		}
	}
	if v, ok := use("KeySchema"); ok {
		if err := decode(v, &in.KeySchema); err != nil {
			return nil, fmt.Errorf("KeySchema: %w", err)
		}
	}
	if v, ok := use("BillingMode"); ok {
		in.BillingMode = types.BillingMode(fmt.Sprint(v))
	}
	if v, ok := use("ProvisionedThroughput"); ok {
		in.ProvisionedThroughput = &types.ProvisionedThroughput{}
		if err := decode(v, in.ProvisionedThroughput); err != nil {
			return nil, fmt.Errorf("ProvisionedThroughput: %w", err)
		}
	}
	if v, ok := use("GlobalSecondaryIndexes"); ok {
		if err := decode(v, &in.GlobalSecondaryIndexes); err != nil {
			return nil, fmt.Errorf("GlobalSecondaryIndexes: %w", err)
		}
	}
	if v, ok := use("LocalSecondaryIndexes"); ok {
		if err := decode(v, &in.LocalSecondaryIndexes); err != nil {
			return nil, fmt.Errorf("LocalSecondaryIndexes: %w", err)
		}
	}
	if v, ok := use("StreamSpecification"); ok {
		m, _ := v.(map[string]any)
		in.StreamSpecification = &types.StreamSpecification{
			StreamEnabled:  aws.Bool(true),
			StreamViewType: types.StreamViewType(fmt.Sprint(m["StreamViewType"])),
		}
	}
	if v, ok := use("SSESpecification"); ok {
		m, _ := v.(map[string]any)
		spec := &types.SSESpecification{Enabled: aws.Bool(truthy(m["SSEEnabled"]))}
		if t, ok := m["SSEType"].(string); ok {
			spec.SSEType = types.SSEType(t)
		}
		if k, ok := m["KMSMasterKeyId"].(string); ok {
			spec.KMSMasterKeyId = aws.String(k)
		}
		in.SSESpecification = spec
	}
	if v, ok := use("DeletionProtectionEnabled"); ok {
		in.DeletionProtectionEnabled = aws.Bool(truthy(v))
	}
	if v, ok := use("Tags"); ok {
		if err := decode(v, &in.Tags); err != nil {
			return nil, fmt.Errorf("Tags: %w", err)
		}
	}
	handled["TableName"] = true
	ttl, hasTTL := use("TimeToLiveSpecification")
	pitr, hasPITR := use("PointInTimeRecoverySpecification")

	for k := range props {
		if !handled[k] {
			res.Notes = append(res.Notes, "property "+k+" is not applied locally")
		}
	}
	sort.Strings(res.Notes)

	_, err := p.ddb.CreateTable(ctx, in)
	var inUse *types.ResourceInUseException
	switch {
	case errors.As(err, &inUse):
		res.Notes = append(res.Notes, "table already existed; reused")
	case err != nil:
		return nil, err
	}
	desc, err := p.waitActive(ctx, name)
	if err != nil {
		return nil, err
	}
	if !sameKeys(desc.KeySchema, in.KeySchema) {
		return nil, fmt.Errorf("table %s exists with another key schema; delete it or use another stack name", name)
	}
	res.PhysicalID = name
	res.Attributes["Arn"] = aws.ToString(desc.TableArn)
	if desc.LatestStreamArn != nil {
		res.Attributes["StreamArn"] = aws.ToString(desc.LatestStreamArn)
	}

	if hasTTL {
		m, _ := ttl.(map[string]any)
		attr, _ := m["AttributeName"].(string)
		if truthy(m["Enabled"]) && attr != "" {
			if err := p.enableTTL(ctx, name, attr); err != nil {
				return nil, fmt.Errorf("TimeToLiveSpecification: %w", err)
			}
		}
	}
	if hasPITR {
		m, _ := pitr.(map[string]any)
		if truthy(m["PointInTimeRecoveryEnabled"]) {
			_, err := p.ddb.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
				TableName: aws.String(name),
				PointInTimeRecoverySpecification: &types.PointInTimeRecoverySpecification{
					PointInTimeRecoveryEnabled: aws.Bool(true),
				},
			})
			if err != nil {
				// DynamoDB Local has no backups; PITR matters only in the cloud.
				res.Notes = append(res.Notes, "PointInTimeRecoverySpecification not applied by this endpoint: "+shortErr(err))
			}
		}
	}
	return res, nil
}

func (p *provisioner) waitActive(ctx context.Context, name string) (*types.TableDescription, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := p.ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return nil, err
		}
		active := out.Table.TableStatus == types.TableStatusActive
		for _, g := range out.Table.GlobalSecondaryIndexes {
			if g.IndexStatus != types.IndexStatusActive {
				active = false
			}
		}
		if active {
			return out.Table, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("table %s is not ACTIVE after 2 minutes (status %s)", name, out.Table.TableStatus)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (p *provisioner) enableTTL(ctx context.Context, table, attr string) error {
	cur, err := p.ddb.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err == nil && cur.TimeToLiveDescription != nil &&
		aws.ToString(cur.TimeToLiveDescription.AttributeName) == attr &&
		(cur.TimeToLiveDescription.TimeToLiveStatus == types.TimeToLiveStatusEnabled ||
			cur.TimeToLiveDescription.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
		return nil
	}
	_, err = p.ddb.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(attr), Enabled: aws.Bool(true)},
	})
	return err
}

func sameKeys(a, b []types.KeySchemaElement) bool {
	norm := func(ks []types.KeySchemaElement) []string {
		var out []string
		for _, k := range ks {
			out = append(out, aws.ToString(k.AttributeName)+"/"+string(k.KeyType))
		}
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// decode copies an evaluated template value into an SDK shape. The template's
// property names are the API's member names for these shapes, and
// encoding/json matches field names case-insensitively.
func decode(v any, out any) error {
	b, err := json.Marshal(normalizeNumbers(v))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// normalizeNumbers turns numeric strings into numbers where the API expects
// numbers (a parameter substituted into ReadCapacityUnits, for instance).
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			switch k {
			case "ReadCapacityUnits", "WriteCapacityUnits", "MaxReadRequestUnits", "MaxWriteRequestUnits":
				if s, ok := val.(string); ok {
					if n, err := strconv.ParseInt(s, 10, 64); err == nil {
						out[k] = n
						continue
					}
				}
			}
			out[k] = normalizeNumbers(val)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = normalizeNumbers(val)
		}
		return out
	}
	return v
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		b, _ := strconv.ParseBool(x)
		return b
	}
	return false
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
