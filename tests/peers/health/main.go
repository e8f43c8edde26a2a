// Command health-peer is a test peer: it judges an object the way the tools
// people point at the operator do, with their own upstream code.
//
//	health-peer kstatus < object.json
//	    kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status, what Flux uses):
//	    prints "<Status>\t<message>".
//	health-peer argocd SCRIPT.lua < object.json
//	    runs an Argo CD resource health script in gopher-lua, as Argo CD does
//	    (the object as the global `obj`, the returned table's status and
//	    message): prints "<status>\t<message>".
//	health-peer promql < rules.json
//	    parses every `expr` of Prometheus rule groups ({"groups": [...]}) with
//	    Prometheus' own PromQL parser, as `promtool check rules` does; prints
//	    "ok N" or fails naming the rule.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/prometheus/promql/parser"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: health-peer kstatus|argocd SCRIPT|promql")
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("read stdin: %v", err)
	}
	switch os.Args[1] {
	case "kstatus":
		kstatus(input)
	case "argocd":
		if len(os.Args) < 3 {
			fail("argocd needs the script path")
		}
		argocd(os.Args[2], input)
	case "promql":
		promql(input)
	default:
		fail("unknown mode %q", os.Args[1])
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}

func kstatus(input []byte) {
	object := &unstructured.Unstructured{}
	if err := object.UnmarshalJSON(input); err != nil {
		fail("object: %v", err)
	}
	result, err := status.Compute(object)
	if err != nil {
		fail("kstatus: %v", err)
	}
	fmt.Printf("%s\t%s\n", result.Status, result.Message)
}

func argocd(script string, input []byte) {
	var object any
	if err := json.Unmarshal(input, &object); err != nil {
		fail("object: %v", err)
	}
	source, err := os.ReadFile(script)
	if err != nil {
		fail("script: %v", err)
	}
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	// The libraries Argo CD opens for health scripts.
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		state.Push(state.NewFunction(lib.open))
		state.Push(lua.LString(lib.name))
		state.Call(1, 0)
	}
	state.SetGlobal("obj", toLua(state, object))
	if err := state.DoString(string(source)); err != nil {
		fail("lua: %v", err)
	}
	table, ok := state.Get(-1).(*lua.LTable)
	if !ok {
		fail("the script returned %s, not a table", state.Get(-1).Type())
	}
	fmt.Printf("%s\t%s\n", lua.LVAsString(table.RawGetString("status")), lua.LVAsString(table.RawGetString("message")))
}

func toLua(state *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		table := state.NewTable()
		for _, item := range v {
			table.Append(toLua(state, item))
		}
		return table
	case map[string]any:
		table := state.NewTable()
		for key, item := range v {
			table.RawSetString(key, toLua(state, item))
		}
		return table
	}
	fail("unexpected JSON value %T", value)
	return lua.LNil
}

func promql(input []byte) {
	var rules struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert  string `json:"alert"`
				Record string `json:"record"`
				Expr   string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(input, &rules); err != nil {
		fail("rules: %v", err)
	}
	count := 0
	for _, group := range rules.Groups {
		for _, rule := range group.Rules {
			if _, err := parser.NewParser(parser.Options{}).ParseExpr(rule.Expr); err != nil {
				fail("group %s, rule %s%s: %v", group.Name, rule.Alert, rule.Record, err)
			}
			count++
		}
	}
	if count == 0 {
		fail("no rules")
	}
	fmt.Printf("ok %d\n", count)
}
