package yunxiao

// RunSummary is one item of ListPipelineRuns.
type RunSummary struct {
	PipelineRunID ID     `json:"pipelineRunId"`
	Status        string `json:"status"`
	TriggerMode   ID     `json:"triggerMode"`
	StartTime     Millis `json:"startTime"`
	EndTime       Millis `json:"endTime"`
}

// PipelineSummary is one item of ListPipelines.
type PipelineSummary struct {
	PipelineID   ID     `json:"pipelineId"`
	PipelineName string `json:"pipelineName"`
}
