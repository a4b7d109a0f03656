package keys

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/worker"
)

// Service wiring of moxd-keys: master provisions certificates and DKIM keys
// (FamKeysAdmin); TLS roles fetch certificates and ask for TLS signatures
// (FamTLS); queue asks for DKIM signatures (FamDKIM). Every key has one
// purpose and Ring.Sign enforces it, so a TLS role can never obtain a DKIM
// signature and queue never a TLS one.

// quotaWait is how long a signing request may wait for its role's quota.
const quotaWait = 5 * time.Second

type service struct {
	w    *worker.Worker
	dir  *Dir
	ring *Ring

	mu          sync.Mutex
	pending     map[string]*Key // certificate pairs loaded, not yet committed
	provisioned bool            // the configured certificate pairs are in the ring
	caDER       []byte
	localNames  []string

	quotas map[ipc.Role]chan struct{}
}

// Run is the keys role.
func Run(ctx context.Context, w *worker.Worker) error {
	var slice config.Slice
	if err := w.Config(&slice); err != nil {
		return err
	}
	if slice.Keys == nil {
		return fmt.Errorf("config slice lacks the keys section")
	}
	dir, err := OpenDir(slice.Dir)
	if err != nil {
		return err
	}
	s := &service{
		w:       w,
		dir:     dir,
		ring:    NewRing(),
		pending: map[string]*Key{},
		quotas:  map[ipc.Role]chan struct{}{},
	}
	ncpu := runtime.NumCPU()
	for _, r := range []ipc.Role{ipc.RoleSMTP, ipc.RoleSubmission, ipc.RoleIMAP, ipc.RoleWeb} {
		s.quotas[r] = make(chan struct{}, 4*ncpu)
	}
	s.quotas[ipc.RoleQueue] = make(chan struct{}, 2*ncpu)

	if err := s.apply(slice.Keys); err != nil {
		return err
	}
	w.Handle(ipc.RoleMaster, ipc.HandlerFunc(s.serveAdmin))
	for r := range s.quotas {
		w.Handle(r, ipc.HandlerFunc(s.servePeer))
	}
	w.OnStatus(s.counters)
	w.OnReload(func(ctx context.Context) error {
		var sl config.Slice
		if err := w.Config(&sl); err != nil {
			return err
		}
		if sl.Keys == nil {
			return fmt.Errorf("config slice lacks the keys section")
		}
		return s.apply(sl.Keys)
	})
	w.Ready()
	<-ctx.Done()
	return nil
}

// apply loads what the slice asks for that keys maintains by itself.
func (s *service) apply(ks *config.KeysSlice) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ks.LocalCANames) > 0 {
		k, caDER, err := s.dir.EnsureLocalCA(ks.LocalCANames)
		if err != nil {
			return fmt.Errorf("local CA: %w", err)
		}
		k.Name = "tls:localca"
		s.ring.Replace(k.Name, k)
		s.caDER = caDER
	} else if s.caDER != nil {
		s.ring.Remove("tls:localca")
		s.caDER = nil
	}
	if len(ks.CertNames) == 0 {
		s.provisioned = true
	}
	return nil
}

func (s *service) counters() []ipc.Counter {
	var l []ipc.Counter
	for _, c := range s.ring.Counters() {
		l = append(l, ipc.Counter{Name: "signs " + c.Name, Value: c.Signs})
	}
	return l
}

// serveAdmin handles master's provisioning requests.
func (s *service) serveAdmin(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
	defer closeFiles(req.Files)
	switch m := req.Msg.(type) {
	case *ipc.LoadCertPair:
		k, err := LoadPair(m.Name, req.Files[0], req.Files[1])
		if err != nil {
			return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "%v", err)
		}
		k.Name = "tls:file:" + m.Name
		s.mu.Lock()
		s.pending[m.Name] = k
		s.mu.Unlock()
		return &ipc.CertLoaded{Names: k.Names, NotAfter: k.NotAfter.Unix()}, nil, nil

	case *ipc.CommitCerts:
		s.mu.Lock()
		defer s.mu.Unlock()
		keep := map[string]bool{}
		for _, name := range m.Names {
			k := s.pending[name]
			if k == nil {
				return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "certificate %q was not loaded", name)
			}
			keep[k.Name] = true
		}
		for _, name := range m.Names {
			k := s.pending[name]
			s.ring.Replace(k.Name, k)
		}
		for _, k := range s.ring.ByPurpose(PurposeTLS) {
			if strings.HasPrefix(k.Name, "tls:file:") && !keep[k.Name] {
				s.ring.Remove(k.Name)
			}
		}
		s.pending = map[string]*Key{}
		s.provisioned = true
		return &ipc.Ack{}, nil, nil

	case *ipc.EnsureDKIM:
		k, created, err := s.dir.EnsureDKIM(m.Domain, m.Selector, m.Algorithm)
		if err != nil {
			return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "%v", err)
		}
		k.Name = "dkim:" + m.Domain + ":" + m.Selector
		if old, ok := s.ring.DKIM(m.Domain, m.Selector); !ok || old.Algorithm != k.Algorithm {
			s.ring.Replace(k.Name, k)
		}
		return &ipc.DKIMPublic{Domain: m.Domain, Selector: m.Selector, Algorithm: k.Algorithm, Record: DKIMRecord(k), Created: created}, nil, nil

	case *ipc.GetLocalCA:
		s.mu.Lock()
		ca := s.caDER
		s.mu.Unlock()
		if ca == nil {
			return nil, nil, ipc.Errorf(ipc.CodeNotFound, "no local CA configured (tls.local_ca)")
		}
		return &ipc.LocalCA{CertDER: ca}, nil, nil
	}
	return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "unexpected %s", ipc.MessageName(req.Msg.Type()))
}

// maxCertBatch bounds the certificates described in one CertBatch frame.
const maxCertBatch = 8

// servePeer handles TLS roles and queue.
func (s *service) servePeer(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
	closeFiles(req.Files)
	peer := req.Conn.Peer()
	switch m := req.Msg.(type) {
	case *ipc.GetCerts:
		s.mu.Lock()
		ok := s.provisioned
		s.mu.Unlock()
		if !ok {
			return nil, nil, ipc.Errorf(ipc.CodeUnavailable, "certificates are being loaded")
		}
		keys := s.ring.ByPurpose(PurposeTLS)
		start := min(int(m.Start), len(keys))
		end := min(start+maxCertBatch, len(keys))
		b := &ipc.CertBatch{Total: uint16(len(keys))}
		for _, k := range keys[start:end] {
			pub, err := x509.MarshalPKIXPublicKey(k.Public)
			if err != nil {
				return nil, nil, err
			}
			size := 0
			for _, c := range k.Chain {
				size += len(c)
			}
			b.Certs = append(b.Certs, ipc.CertInfo{KeyID: k.ID, Names: k.Names, NotAfter: k.NotAfter.Unix(), ChainSize: uint32(size), PublicKey: pub})
		}
		return b, nil, nil

	case *ipc.GetChain:
		k, ok := s.ring.Get(m.KeyID)
		if !ok || k.Purpose != PurposeTLS {
			return nil, nil, ipc.Errorf(ipc.CodeNotFound, "no TLS key %d", m.KeyID)
		}
		var chain []byte
		for _, c := range k.Chain {
			chain = append(chain, c...)
		}
		off := int(m.Offset)
		if off > len(chain) {
			return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "offset %d beyond chain size %d", off, len(chain))
		}
		end := min(off+ipc.MaxChainChunk, len(chain))
		return &ipc.ChainChunk{Total: uint32(len(chain)), Data: chain[off:end]}, nil, nil

	case *ipc.Sign:
		release, err := s.acquire(ctx, peer)
		if err != nil {
			return nil, nil, err
		}
		defer release()
		var opts crypto.SignerOpts = crypto.Hash(m.Hash)
		if m.PSS {
			opts = &rsa.PSSOptions{SaltLength: int(m.SaltLength), Hash: crypto.Hash(m.Hash)}
		}
		sig, err := s.ring.Sign(m.KeyID, PurposeTLS, m.Digest, opts)
		if err != nil {
			return nil, nil, ipc.Errorf(ipc.CodeDenied, "%v", err)
		}
		return &ipc.Signature{Sig: sig}, nil, nil

	case *ipc.DKIMSign:
		release, err := s.acquire(ctx, peer)
		if err != nil {
			return nil, nil, err
		}
		defer release()
		k, ok := s.ring.DKIM(m.Domain, m.Selector)
		if !ok {
			return nil, nil, ipc.Errorf(ipc.CodeNotFound, "no DKIM key for selector %s of %s", m.Selector, m.Domain)
		}
		sig, err := s.ring.Sign(k.ID, PurposeDKIM, m.Digest, crypto.Hash(m.Hash))
		if err != nil {
			return nil, nil, ipc.Errorf(ipc.CodeDenied, "%v", err)
		}
		return &ipc.DKIMSignature{Sig: sig}, nil, nil
	}
	return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "unexpected %s", ipc.MessageName(req.Msg.Type()))
}

// acquire takes a slot of the role's signing quota.
func (s *service) acquire(ctx context.Context, r ipc.Role) (func(), error) {
	q := s.quotas[r]
	if q == nil {
		return nil, ipc.Errorf(ipc.CodeDenied, "role %s may not sign", r)
	}
	select {
	case q <- struct{}{}:
		return func() { <-q }, nil
	default:
	}
	t := time.NewTimer(quotaWait)
	defer t.Stop()
	select {
	case q <- struct{}{}:
		return func() { <-q }, nil
	case <-t.C:
		return nil, ipc.Errorf(ipc.CodeBusy, "signing quota of role %s exhausted", r)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
