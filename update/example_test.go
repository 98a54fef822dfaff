package update_test

import (
	"encoding/json"
	"fmt"

	"github.com/iii-go/iii/update"
)

// Apply applies operations as the engine's stores do; a custom stream
// provider can use it for its updates.
func ExampleApply() {
	old := json.RawMessage(`{"count":1,"log":["start"]}`)
	out, errs, _ := update.Apply(old, []update.Op{
		update.Increment("count", 2),
		update.Append("log", "step"),
		update.MergeAt(map[string]string{"by": "ada"}, "meta", "last"),
		update.Append("count", "x"), // a number: skipped
	})
	fmt.Println(string(out))
	fmt.Println(update.Errors(errs))
	// Output:
	// {"count":3,"log":["start","step"],"meta":{"last":{"by":"ada"}}}
	// update: op 3: append.type_mismatch: Cannot append at path 'count': target is number, expected array, string, null, or missing field.
}
