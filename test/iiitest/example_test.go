package iiitest_test

import (
	"fmt"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// A raw WebSocket worker connects, registers a function and calls it.
func Example() {
	eng, err := iiitest.Start("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer eng.Close()

	ws, _, err := websocket.DefaultDialer.Dial(eng.URL, nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	read := func() wire.Message {
		_, b, err := ws.ReadMessage()
		if err != nil {
			panic(err)
		}
		m, err := wire.Decode(b)
		if err != nil {
			panic(err)
		}
		return m
	}
	send := func(m wire.Message) {
		if err := ws.WriteMessage(websocket.TextMessage, wire.Encode(m)); err != nil {
			panic(err)
		}
	}

	fmt.Println(read().Kind()) // the engine speaks first
	send(&wire.RegisterFunction{ID: "greet::hello"})
	id := wire.MustParseUUID("5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a")
	send(&wire.InvokeFunction{InvocationID: id, HasInvocationID: true, FunctionID: "greet::hello", Data: []byte(`{"name":"Ada"}`)})

	// The call comes back to this worker, the function's owner.
	call := read().(*wire.InvokeFunction)
	fmt.Println(call.FunctionID, string(call.Data) != "")
	send(&wire.InvocationResult{InvocationID: call.InvocationID, FunctionID: call.FunctionID, Result: []byte(`"hello Ada"`)})

	res := read().(*wire.InvocationResult)
	fmt.Println(string(res.Result))
	// Output:
	// workerregistered
	// greet::hello true
	// "hello Ada"
}
