package main

// The SDK side, written the way the package documentation shows: typed
// functions registered with iii.RegisterFunction (json.RawMessage in and
// out, so that no struct decoding is measured), calls made with
// w.Trigger, w.Enqueue and iii.Void().

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/iii-go/iii"
)

// startSDKHandler connects a worker that serves bench::<ns>sdk::*. limit
// is its MaxConcurrentInvocations: the inflight scenario parks that many
// calls in running handlers, and its control call must still find a slot.
func startSDKHandler(ctx context.Context, url, ns, impl string, hs *handlerState, limit int) (*iii.III, error) {
	w := iii.RegisterWorker(url, iii.InitOptions{MaxConcurrentInvocations: limit, Telemetry: telemetryOption(impl == implOtel)})
	fns := map[string]func(context.Context, json.RawMessage) (json.RawMessage, error){
		opEcho: func(_ context.Context, req json.RawMessage) (json.RawMessage, error) {
			hs.echo.Add(1)
			return req, nil
		},
		opSink: func(_ context.Context, req json.RawMessage) (json.RawMessage, error) {
			hs.onSink(req)
			return nil, nil
		},
		opJob: func(context.Context, json.RawMessage) (json.RawMessage, error) {
			hs.job.Add(1)
			return nil, nil
		},
		opPark: func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
			release := hs.parkChan()
			hs.park.Add(1)
			hs.parked.Add(1)
			defer hs.parked.Add(-1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		},
	}
	for op, fn := range fns {
		if _, err := iii.RegisterFunction(w, functionID(ns, impl, op), fn); err != nil {
			w.Shutdown()
			return nil, err
		}
	}
	_, err := iii.RegisterFunction(w, functionID(ns, impl, opCtl), func(_ context.Context, req ctlRequest) (ctlReply, error) {
		if req.Op == "release" {
			hs.releaseParked()
		}
		return hs.ctl(req.Op), nil
	})
	if err == nil {
		err = w.WaitConnected(ctx)
	}
	if err != nil {
		w.Shutdown()
		return nil, fmt.Errorf("sdk handler: %w", err)
	}
	return w, nil
}

// sdkCaller is a calling worker.
type sdkCaller struct{ w *iii.III }

// implOtel is the SDK with its telemetry on (-telemetry).
const implOtel = "otel"

// telemetryOption turns the SDK's telemetry on or off explicitly, whatever
// OTEL_ENABLED says: the sdk rows measure the transport, the otel rows the
// cost of telemetry on top of it.
func telemetryOption(on bool) *iii.TelemetryOptions {
	return &iii.TelemetryOptions{Enabled: &on}
}

func dialSDKCaller(ctx context.Context, url string, telemetry bool) (*sdkCaller, error) {
	w := iii.RegisterWorker(url, iii.InitOptions{Telemetry: telemetryOption(telemetry)})
	if err := w.WaitConnected(ctx); err != nil {
		w.Shutdown()
		return nil, fmt.Errorf("sdk caller: %w", err)
	}
	return &sdkCaller{w: w}, nil
}

func (c *sdkCaller) session() session { return c }

func (c *sdkCaller) call(ctx context.Context, fn string, payload []byte) error {
	_, err := c.w.Trigger(ctx, iii.TriggerRequest{FunctionID: fn, Payload: json.RawMessage(payload)})
	return err
}

// void sends a fire-and-forget call. Trigger keeps a copy of a
// json.RawMessage payload (TriggerRequest.Payload), so the caller may
// stamp and reuse its buffer at once, as the raw client does.
func (c *sdkCaller) void(ctx context.Context, fn string, payload []byte) error {
	_, err := c.w.Trigger(ctx, iii.TriggerRequest{FunctionID: fn, Payload: json.RawMessage(payload), Action: iii.Void()})
	return err
}

func (c *sdkCaller) enqueue(ctx context.Context, queue, fn string, payload []byte) error {
	_, err := c.w.Enqueue(ctx, queue, fn, json.RawMessage(payload))
	return err
}

func (c *sdkCaller) close() { c.w.Shutdown() }

// openSDKChannel connects a worker, creates a channel with it and opens
// both ends; done shuts the worker down once both ends are closed.
func openSDKChannel(ctx context.Context, url string) (io.WriteCloser, io.ReadCloser, func(), error) {
	w := iii.RegisterWorker(url, iii.InitOptions{Telemetry: telemetryOption(false)})
	fail := func(what string, err error) (io.WriteCloser, io.ReadCloser, func(), error) {
		w.Shutdown()
		return nil, nil, nil, fmt.Errorf("sdk channel: %s: %w", what, err)
	}
	if err := w.WaitConnected(ctx); err != nil {
		return fail("connect", err)
	}
	ch, err := w.CreateChannel(ctx, channelBuffer)
	if err != nil {
		return fail("CreateChannel", err)
	}
	if err := ch.Writer.Open(ctx); err != nil {
		return fail("writer", err)
	}
	if err := ch.Reader.Open(ctx); err != nil {
		ch.Writer.Close()
		return fail("reader", err)
	}
	return ch.Writer, ch.Reader, w.Shutdown, nil
}
