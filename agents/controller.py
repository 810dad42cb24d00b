"""The LSTM policy network of MnasNet-style controllers (Zoph & Le 2017; Tan et al. 2019).

One LSTM step per categorical decision: the step's hidden state goes through that decision's
linear head to a softmax over its choices, and the embedding of the chosen value is the next
step's input, so a later decision is conditioned on all earlier ones. An optional condition
vector (e.g. a latency target) is added to every step's input, so one network can serve a
whole family of rewards.

Speed matters because the controller runs once per proposal: the heads of all decisions are
one padded weight tensor (unused choices masked), sampling runs step by step under
``no_grad`` with one uniform draw per step from an explicit generator, and ``log_prob``
re-scores stored actions with one fused LSTM call (teacher forcing) for the update.

``sample_excluding`` draws from the policy restricted to architectures outside a given set,
exactly: ``pi(a) / (1 - pi(S))`` for ``a`` not in ``S``. A controller that has collapsed onto
architectures already evaluated still proposes new ones, and PPO gets their true log-prob.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

_MASKED = -1e9  # logit of a padded choice: probability 0, and 0 * logit stays finite
_TOKEN_WIDTH = 256  # RLlib's default fcnet_hiddens [256, 256]


class LSTMController(nn.Module):
    """Autoregressive categorical policy over a fixed list of decision sizes."""

    def __init__(
        self,
        sizes: Sequence[int],
        hidden_size: int = 64,
        *,
        cond_dim: int = 0,
        temperature: float = 1.0,
        tanh_constant: float | None = None,
        init_range: float = 0.1,
        value_head: bool = False,
        prefix_input: bool = False,
    ) -> None:
        super().__init__()
        if not sizes or any(int(s) < 1 for s in sizes):
            raise ValueError(f"sizes must be a non-empty list of positive ints, got {sizes}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.sizes = [int(s) for s in sizes]
        self.steps, self.width = len(self.sizes), max(self.sizes)
        self.hidden_size = int(hidden_size)
        self.cond_dim = int(cond_dim)
        self.temperature = float(temperature)
        self.tanh_constant = tanh_constant
        offsets = [1]  # token 0 is the start token
        for s in self.sizes[:-1]:
            offsets.append(offsets[-1] + s)
        self.register_buffer("offsets", torch.tensor(offsets), persistent=False)
        mask = torch.zeros(self.steps, self.width, dtype=torch.bool)
        for t, s in enumerate(self.sizes):
            mask[t, s:] = True
        self.register_buffer("mask", mask, persistent=False)
        self.embed = nn.Embedding(1 + sum(self.sizes), self.hidden_size)
        # prefix_input: each step reads every choice made so far and the step (one-hot)
        # through a 2-layer tanh MLP, as RLlib's LSTM model reads the architecture
        # environment's observation, instead of the embedding of the previous choice only.
        self.prefix_width = sum(self.sizes) + self.steps
        self.tokenizer = nn.Sequential(
            nn.Linear(self.prefix_width, _TOKEN_WIDTH), nn.Tanh(),
            nn.Linear(_TOKEN_WIDTH, _TOKEN_WIDTH), nn.Tanh(),
        ) if prefix_input else None
        in_dim = _TOKEN_WIDTH if prefix_input else self.hidden_size
        self.cond = nn.Linear(self.cond_dim, in_dim) if self.cond_dim else None
        self.lstm = nn.LSTM(in_dim, self.hidden_size, batch_first=True)
        self.head_w = nn.Parameter(torch.empty(self.steps, self.hidden_size, self.width))
        self.head_b = nn.Parameter(torch.empty(self.steps, self.width))
        # A critic on the same LSTM: the expected reward of each prefix (PPO's state value).
        self.value = nn.Linear(self.hidden_size, 1) if value_head else None
        tokenizer = set() if self.tokenizer is None else set(self.tokenizer.parameters())
        for p in self.parameters():  # ENAS's init: a near-uniform first policy
            if p not in tokenizer:  # (the MLP keeps torch's default init, as RLlib's)
                nn.init.uniform_(p, -init_range, init_range)

    def _logits(self, h: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """Masked logits: ``h`` is ``[n, H]`` at one step, or ``[n, steps, H]`` for all."""
        if step is None:
            logits = torch.einsum("nth,ths->nts", h, self.head_w) + self.head_b
            mask = self.mask
        else:
            logits = h @ self.head_w[step] + self.head_b[step]
            mask = self.mask[step]
        logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits)
        return logits.masked_fill(mask, _MASKED)

    def _prefix_code(self, choices: torch.Tensor, step: int) -> torch.Tensor:
        """One-hot of ``choices`` (``[n, step]``, the decisions made) and of ``step``."""
        code = torch.zeros(len(choices), self.prefix_width)
        if step:
            code.scatter_(1, choices[:, :step] + (self.offsets[:step] - 1), 1.0)
        code[:, self.prefix_width - self.steps + step] = 1.0
        return code

    def _input(self, choices: torch.Tensor, step: int) -> torch.Tensor:
        """The LSTM's input at ``step`` given the choices so far (``[n, >= step]``)."""
        if self.tokenizer is not None:
            return self.tokenizer(self._prefix_code(choices, step))
        if step == 0:
            return self.embed.weight[0].expand(len(choices), -1)
        return self.embed.weight[choices[:, step - 1] + self.offsets[step - 1]]

    def _prefix_codes(self, actions: torch.Tensor) -> torch.Tensor:
        """``[n, steps, prefix_width]``: the code of every step's prefix (teacher forcing)."""
        n = len(actions)
        onehot = torch.zeros(n, self.steps, self.prefix_width)
        onehot.scatter_(2, (actions + (self.offsets - 1)).unsqueeze(2), 1.0)
        made = torch.cat([torch.zeros(n, 1, self.prefix_width), onehot[:, :-1].cumsum(1)], 1)
        made[:, :, self.prefix_width - self.steps:] = torch.eye(self.steps)
        return made

    def _extra(self, n: int, cond: torch.Tensor | None) -> torch.Tensor | None:
        if self.cond is None:
            return None
        if cond is None or tuple(cond.shape) != (n, self.cond_dim):
            raise ValueError(f"cond must have shape ({n}, {self.cond_dim}), got "
                             f"{None if cond is None else tuple(cond.shape)}")
        return self.cond(cond)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` whole architectures: choice indices ``[n, steps]`` and their log-probs ``[n]``."""
        extra = self._extra(n, cond)
        uniform = torch.rand(n, self.steps, generator=generator)
        w_ih, w_hh = self.lstm.weight_ih_l0, self.lstm.weight_hh_l0
        b_ih, b_hh = self.lstm.bias_ih_l0, self.lstm.bias_hh_l0
        h = torch.zeros(n, self.hidden_size)
        c = torch.zeros(n, self.hidden_size)
        chosen, logp = [], torch.zeros(n)
        picked = torch.zeros(n, self.steps, dtype=torch.long)
        for t in range(self.steps):
            x = self._input(picked, t)
            if extra is not None:
                x = x + extra
            h, c = torch.lstm_cell(x, (h, c), w_ih, w_hh, b_ih, b_hh)
            logp_all = torch.log_softmax(self._logits(h, t), dim=-1)
            cdf = logp_all.exp().cumsum(-1)
            a = (cdf < uniform[:, t : t + 1]).sum(-1).clamp_(max=self.sizes[t] - 1)
            chosen.append(a)
            picked[:, t] = a
            logp += logp_all.gather(1, a.unsqueeze(1)).squeeze(1)
        return torch.stack(chosen, 1), logp

    def log_prob(
        self, actions: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability and entropy (summed over steps) of stored actions, with gradients."""
        logp, entropy, _ = self.step_terms(actions, cond)
        return logp.sum(1), entropy.sum(1)

    def step_terms(
        self, actions: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Per decision (``[n, steps]``, with gradients, teacher-forced): the log-prob of each
        stored choice, the step's entropy, and the critic's value of the prefix before it
        (None without a value head)."""
        if actions.dim() != 2 or actions.shape[1] != self.steps:
            raise ValueError(f"actions must have shape (n, {self.steps}), "
                             f"got {tuple(actions.shape)}")
        n = actions.shape[0]
        actions = actions.long()
        if self.tokenizer is not None:
            x = self.tokenizer(self._prefix_codes(actions))
        else:
            tokens = torch.cat([torch.zeros(n, 1, dtype=torch.long),
                                actions[:, :-1] + self.offsets[:-1]], dim=1)
            x = self.embed(tokens)
        extra = self._extra(n, cond)
        if extra is not None:
            x = x + extra.unsqueeze(1)
        h, _ = self.lstm(x)
        logp_all = torch.log_softmax(self._logits(h), dim=-1)
        logp = logp_all.gather(2, actions.unsqueeze(2)).squeeze(2)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        value = None if self.value is None else self.value(h).squeeze(2)
        return logp, entropy, value

    @torch.no_grad()
    def sample_excluding(
        self, excluded: Sequence[Sequence[int]], generator: torch.Generator,
        cond: torch.Tensor | None = None, *, tree: ExclusionTree | None = None,
    ) -> tuple[list[int], float] | None:
        """One architecture from the policy restricted to those not in ``excluded`` (unique
        rows of choice indices), by ancestral sampling: each choice is weighted by the
        policy's mass of its completions outside the set, ``pi(prefix + c)`` minus the mass
        of the excluded architectures below it (float64); a subtree whose every completion is
        excluded gets weight 0. The product of these conditionals is ``pi(a) / (1 - pi(S))``.

        Returns the choices and their *unrestricted* log-prob ``log pi(a)``, or None when every
        architecture is excluded. Cost: one batched ``log_prob`` over ``excluded``, unless the
        caller passes ``tree``: the same set's prefix masses under the current network (kept
        between policy updates, see ``ExclusionTree``)."""
        if tree is None:
            ex = torch.as_tensor(list(excluded), dtype=torch.long).reshape(-1, self.steps)
            p_ex: list[float] = []
            if len(ex):
                ex_cond = None if cond is None else cond.expand(len(ex), -1)
                p_ex = self.log_prob(ex, ex_cond)[0].double().exp().tolist()
            tree = ExclusionTree(ex.tolist(), p_ex)
        mass, count = tree.mass, tree.count
        leaves = [math.prod(self.sizes[t:]) for t in range(self.steps + 1)]
        if tree.size >= leaves[0]:
            return None
        extra = self._extra(1, cond)
        w_ih, w_hh = self.lstm.weight_ih_l0, self.lstm.weight_hh_l0
        b_ih, b_hh = self.lstm.bias_ih_l0, self.lstm.bias_hh_l0
        h = torch.zeros(1, self.hidden_size)
        c = torch.zeros(1, self.hidden_size)
        prefix: list[int] = []
        logp = 0.0
        for t in range(self.steps):
            x = self._input(torch.tensor([prefix + [0] * (self.steps - t)]), t)
            if extra is not None:
                x = x + extra
            h, c = torch.lstm_cell(x, (h, c), w_ih, w_hh, b_ih, b_hh)
            lp = torch.log_softmax(self._logits(h, t), dim=-1)[0, : self.sizes[t]].double()
            weights = []
            for choice, lp_c in enumerate(lp.tolist()):
                key = (*prefix, choice)
                if count.get(key, 0) >= leaves[t + 1]:
                    weights.append(0.0)  # every completion excluded
                else:
                    joint = math.exp(logp + lp_c)
                    # Rounding may leave a partly excluded subtree at <= 0: keep it reachable.
                    weights.append(max(joint - mass.get(key, 0.0), 1e-12 * joint, 1e-300))
            total = sum(weights)
            u = float(torch.rand(1, generator=generator)) * total
            choice, acc = len(weights) - 1, 0.0
            for i, w in enumerate(weights):
                acc += w
                if w > 0 and u < acc:
                    choice = i
                    break
            while weights[choice] == 0.0:  # u landed on the rounding edge
                choice -= 1
            prefix.append(choice)
            logp += lp[choice].item()
        return prefix, logp


class ExclusionTree:
    """Prefix sums over a set of excluded architectures: for every prefix, the policy's mass
    of the excluded architectures below it and how many there are. ``sample_excluding`` needs
    them; built once per policy (the masses change with the weights) and extended one
    architecture at a time as proposals are excluded, instead of rebuilt on every ask."""

    def __init__(self, rows: Sequence[Sequence[int]] = (), probs: Sequence[float] = ()) -> None:
        self.mass: dict[tuple[int, ...], float] = {}
        self.count: dict[tuple[int, ...], int] = {}
        self.size = 0
        for row, p in zip(rows, probs, strict=True):
            self.add(row, p)

    def add(self, row: Sequence[int], prob: float) -> None:
        """One more excluded architecture (``row``, unique) of policy probability ``prob``."""
        mass, count = self.mass, self.count
        row = tuple(row)
        for t in range(1, len(row) + 1):
            key = row[:t]
            mass[key] = mass.get(key, 0.0) + prob
            count[key] = count.get(key, 0) + 1
        self.size += 1
