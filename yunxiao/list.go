package yunxiao

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// Endpoint names of the list calls.
const (
	EndpointListPipelines    = "ListPipelines"
	EndpointListPipelineRuns = "ListPipelineRuns"
)

// Paging limits: the API serves at most 30 items a page.
const (
	PerPage = 30
	// MaxPipelinePages bounds one discovery (30,000 pipelines).
	MaxPipelinePages = 1000
	// MaxRunPages bounds one run-history refresh of a pipeline (300 runs
	// since the last refresh); more than that between two refreshes is
	// logged as a gap rather than fetched without end.
	MaxRunPages = 10
)

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

// ErrTooManyPages reports a listing cut at its page limit; the items
// fetched so far are returned with it.
var ErrTooManyPages = errors.New("listing stopped at its page limit")

// ListPipelines returns every pipeline of the organization, page by page.
func (c *Client) ListPipelines(ctx context.Context) ([]PipelineSummary, error) {
	var all []PipelineSummary
	err := c.pages(ctx, EndpointListPipelines, EndpointListPipelines, "/pipelines", url.Values{}, MaxPipelinePages, func(body []byte) (int, error) {
		items, err := decodeList[PipelineSummary](body)
		all = append(all, items...)
		return len(items), err
	})
	return all, err
}

// ListPipelineRuns returns the runs of a pipeline that started at or after
// since (epoch ms), page by page.
func (c *Client) ListPipelineRuns(ctx context.Context, pipelineID int64, since Millis) ([]RunSummary, error) {
	q := url.Values{}
	if since.IsSet() {
		q.Set("startTime", strconv.FormatInt(int64(since), 10))
	}
	var all []RunSummary
	err := c.pages(ctx, EndpointListPipelineRuns, subject(EndpointListPipelineRuns, pipelineID), fmt.Sprintf("/pipelines/%d/runs", pipelineID), q, MaxRunPages, func(body []byte) (int, error) {
		items, err := decodeList[RunSummary](body)
		all = append(all, items...)
		return len(items), err
	})
	return all, err
}

// pages walks a paged list: it follows x-next-page, else x-total-pages,
// else keeps going while pages come back full; it stops at an empty page
// or at maxPages (returning ErrTooManyPages with what it has). Every page
// is about the same subject: a 429 on one page pauses the next listing
// whatever page or startTime it asks for.
func (c *Client) pages(ctx context.Context, endpoint, subject, path string, q url.Values, maxPages int, take func([]byte) (int, error)) error {
	q.Set("perPage", strconv.Itoa(PerPage))
	for page := 1; ; {
		q.Set("page", strconv.Itoa(page))
		var header http.Header
		body, err := c.getWithHeader(ctx, call{endpoint, subject, path + "?" + q.Encode()}, &header)
		if err != nil {
			return c.redactError(err)
		}
		n, err := take(body)
		if err != nil {
			return c.decodeError(endpoint, header, err)
		}
		next, ok := nextPage(header, page, n)
		if !ok {
			return nil
		}
		if next > maxPages {
			return &Error{Endpoint: endpoint, StatusCode: http.StatusOK, Reason: ReasonBadResponse, Err: ErrTooManyPages,
				Message: fmt.Sprintf("more than %d pages", maxPages)}
		}
		page = next
	}
}

// nextPage reads the paging headers; without them a full page suggests
// another one.
func nextPage(h http.Header, page, items int) (int, bool) {
	if items == 0 {
		return 0, false
	}
	if v := h.Get("x-next-page"); v != "" {
		next, err := strconv.Atoi(v)
		return next, err == nil && next > page
	}
	if v := h.Get("x-total-pages"); v != "" {
		total, err := strconv.Atoi(v)
		return page + 1, err == nil && page < total
	}
	if h.Get("x-total") != "" || h.Get("x-page") != "" {
		return 0, false // paged, and no next page named
	}
	return page + 1, items >= PerPage
}

// decodeList decodes a JSON array of items; null or an empty body is none.
// An error object is an *Error with ReasonAPIError.
func decodeList[T any](body []byte) ([]T, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || bytes.Equal(body, []byte("null")) {
		return nil, nil
	}
	if e := errorObject(body); e != nil {
		return nil, e
	}
	if body[0] != '[' {
		return nil, fmt.Errorf("list: expected a JSON array, got %s", describeStart(body))
	}
	var items []T
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	return items, nil
}
