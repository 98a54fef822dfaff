package stream_test

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/stream"
	"github.com/iii-go/iii/test/iiitest"
)

// A stream of chat messages with a function that receives its changes.
func ExampleOnChange() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	ctx := context.Background()

	type Message struct {
		Text string `json:"text"`
	}
	chat := stream.New[Message](w, "chat")

	seen := make(chan string, 4)
	sub, _ := chat.OnChange("chat::on-room-1", "room-1", "", func(ctx context.Context, e stream.Event[Message]) error {
		if e.Type == stream.Sent {
			seen <- fmt.Sprintf("%s %s %s", e.Type, e.Message.Type, e.Message.Data)
		} else {
			seen <- fmt.Sprintf("%s %s %q", e.Type, e.ID, e.Data.Text)
		}
		return nil
	})
	eng.WaitTrigger(ctx, sub.Trigger.ID()) // the double's hook: the binding is live

	chat.Set(ctx, "room-1", "m1", Message{Text: "hello"})
	chat.Set(ctx, "room-2", "m1", Message{Text: "elsewhere"}) // another group: not seen
	chat.Set(ctx, "room-1", "m1", Message{Text: "hello, all"})
	chat.Send(ctx, "room-1", "", "typing", map[string]string{"user": "ada"})
	chat.Delete(ctx, "room-1", "m1")

	var lines []string
	for range 4 {
		lines = append(lines, <-seen)
	}
	sort.Strings(lines) // changes of different writes may arrive in any order
	for _, l := range lines {
		fmt.Println(l)
	}
	msgs, _ := chat.List(ctx, "room-2")
	fmt.Println(len(msgs), msgs[0].Text)
	// Output:
	// create m1 "hello"
	// delete m1 "hello, all"
	// event typing {"user":"ada"}
	// update m1 "hello, all"
	// 1 elsewhere
}

// counters is a custom stream kept in memory by the worker.
type counters struct {
	mu    sync.Mutex
	items map[stream.Item]int
}

func (c *counters) Get(ctx context.Context, it stream.Item) (*int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.items[it]; ok {
		return &v, nil
	}
	return nil, nil
}

func (c *counters) Set(ctx context.Context, it stream.Item, v int) (stream.Result[int], error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := stream.Result[int]{New: v}
	if old, ok := c.items[it]; ok {
		r.Old = &old
	}
	c.items[it] = v
	return r, nil
}

func (c *counters) Delete(ctx context.Context, it stream.Item) (*int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.items[it]
	if !ok {
		return nil, nil
	}
	delete(c.items, it)
	return &old, nil
}

func (c *counters) List(ctx context.Context, g stream.Group) ([]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for it, v := range c.items {
		if it.StreamName == g.StreamName && it.GroupID == g.GroupID {
			out = append(out, v)
		}
	}
	sort.Ints(out)
	return out, nil
}

func (c *counters) ListGroups(ctx context.Context, name string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for it := range c.items {
		if it.StreamName == name {
			out = append(out, it.GroupID)
		}
	}
	sort.Strings(out)
	return out, nil
}

// A worker serving a custom stream: the engine sends the stream's reads
// and writes to it, whoever makes them.
func ExampleRegisterProvider() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	ctx := context.Background()

	provider := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer provider.Shutdown()
	store := &counters{items: map[stream.Item]int{}}
	stream.RegisterProvider[int](provider, "counters", store)

	client := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer client.Shutdown()
	client.WaitForFunction(ctx, stream.ProviderFunctionID("list_groups", "counters"))

	s := stream.New[int](client, "counters")
	s.Set(ctx, "site", "visits", 1)
	r, _ := s.Set(ctx, "site", "visits", 2)
	fmt.Println("before:", *r.Old, "after:", r.New)
	s.Set(ctx, "site", "likes", 7)

	all, _ := s.List(ctx, "site")
	fmt.Println(all)
	store.mu.Lock()
	fmt.Println("in the provider:", store.items[stream.Item{StreamName: "counters", GroupID: "site", ItemID: "likes"}])
	store.mu.Unlock()
	// Output:
	// before: 1 after: 2
	// [2 7]
	// in the provider: 7
}
