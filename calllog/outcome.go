package calllog

import "encoding/json"

// ScriptError is an error a script threw: its name and message.
type ScriptError struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

func (e *ScriptError) Error() string {
	switch {
	case e.Name == "":
		return e.Message
	case e.Message == "":
		return e.Name
	}
	return e.Name + ": " + e.Message
}

// OracleValue is one recorded System.oracle outcome: a JSON value or the
// error the function threw.
type OracleValue struct {
	Value json.RawMessage `json:"value,omitempty"`
	Error *ScriptError    `json:"error,omitempty"`
}
