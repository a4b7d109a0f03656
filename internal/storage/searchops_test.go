package storage

import (
	"testing"

	"moxd/internal/ipc"
	"moxd/internal/storage/account"
)

// TestSearchOps: convertSearch passes the IPC search operator on as the
// account's, so each pair must have the same value.
func TestSearchOps(t *testing.T) {
	pairs := []struct {
		ipc     uint8
		account account.SearchOp
	}{
		{ipc.SearchAll, account.SearchAll}, {ipc.SearchAnd, account.SearchAnd}, {ipc.SearchOr, account.SearchOr},
		{ipc.SearchNot, account.SearchNot}, {ipc.SearchUIDs, account.SearchUIDs}, {ipc.SearchFlag, account.SearchFlag},
		{ipc.SearchLarger, account.SearchLarger}, {ipc.SearchSmaller, account.SearchSmaller},
		{ipc.SearchBefore, account.SearchBefore}, {ipc.SearchOn, account.SearchOn}, {ipc.SearchSince, account.SearchSince},
		{ipc.SearchSentBefore, account.SearchSentBefore}, {ipc.SearchSentOn, account.SearchSentOn},
		{ipc.SearchSentSince, account.SearchSentSince}, {ipc.SearchHeader, account.SearchHeader},
		{ipc.SearchBody, account.SearchBody}, {ipc.SearchText, account.SearchText}, {ipc.SearchModSeq, account.SearchModSeq},
		{ipc.SearchOlder, account.SearchReceivedBefore}, {ipc.SearchYounger, account.SearchReceivedSince},
		{ipc.SearchSavedBefore, account.SearchSavedBefore}, {ipc.SearchSavedOn, account.SearchSavedOn},
		{ipc.SearchSavedSince, account.SearchSavedSince},
	}
	for _, p := range pairs {
		if account.SearchOp(p.ipc) != p.account {
			t.Errorf("ipc search operator %d is account operator %d", p.ipc, p.account)
		}
		if k := convertSearch(ipc.SearchNode{Op: p.ipc}); k.Op != p.account {
			t.Errorf("convertSearch(%d).Op = %d, want %d", p.ipc, k.Op, p.account)
		}
	}
	if k := convertSearch(ipc.SearchNode{Op: ipc.SearchLarger, Number: 5}); k.Size != 5 {
		t.Errorf("LARGER 5: size %d", k.Size)
	}
	if k := convertSearch(ipc.SearchNode{Op: ipc.SearchSavedOn, Number: 86400}); k.Date.Unix() != 86400 {
		t.Errorf("SAVEDON: date %v", k.Date)
	}
	if k := convertSearch(ipc.SearchNode{Op: ipc.SearchModSeq, Number: 7}); k.ModSeq != 7 {
		t.Errorf("MODSEQ 7: modseq %d", k.ModSeq)
	}
}
