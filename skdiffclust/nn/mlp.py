"""Multilayer-perceptron backbones for vector data."""

from torch import nn


def mlp(sizes, final_activation=False):
    """``Linear -> GELU`` stacks through ``sizes``; no activation after the last layer
    unless ``final_activation``."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if final_activation or i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class GaussianEncoder(nn.Module):
    """q(z|x) = N(mean(x), diag exp(log_var(x))) with an MLP trunk."""

    def __init__(self, n_features, hidden_dims, latent_dim):
        super().__init__()
        self.trunk = mlp([n_features, *hidden_dims], final_activation=True)
        width = hidden_dims[-1] if hidden_dims else n_features
        self.mean = nn.Linear(width, latent_dim)
        self.log_var = nn.Linear(width, latent_dim)

    def forward(self, x):
        h = self.trunk(x.flatten(1))
        return self.mean(h), self.log_var(h)


class MLPDecoder(nn.Module):
    """Deterministic decoder ``z -> x`` (the mirror of :class:`GaussianEncoder`)."""

    def __init__(self, latent_dim, hidden_dims, n_features):
        super().__init__()
        self.net = mlp([latent_dim, *reversed(hidden_dims), n_features])

    def forward(self, z):
        return self.net(z)


class Embed(nn.Module):
    """The authors' ``EmbedFC``: Linear -> GELU -> Linear."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, n_out), nn.GELU(), nn.Linear(n_out, n_out))

    def forward(self, x):
        return self.net(x)


class _ConditionedBlock(nn.Module):
    def __init__(self, width, latent_dim):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.linear = nn.Linear(width, width)
        self.z_embed = Embed(latent_dim, width)
        self.t_embed = Embed(1, width)

    def forward(self, h, z, t):
        # As in the authors' U-Net: z conditions multiplicatively, t additively.
        u = self.z_embed(z) * self.linear(self.norm(h)) + self.t_embed(t)
        return h + nn.functional.gelu(u)


class MLPDenoiser(nn.Module):
    """Conditional noise predictor eps(x_t, z, t/T) for vector data.

    A stack of residual blocks, each ``h + GELU(emb_z(z) * W LN(h) + emb_t(t))``.
    """

    def __init__(self, n_features, hidden_dims, latent_dim):
        super().__init__()
        width = hidden_dims[0] if hidden_dims else 256
        self.inp = nn.Linear(n_features, width)
        self.blocks = nn.ModuleList(
            _ConditionedBlock(width, latent_dim) for _ in range(max(len(hidden_dims), 1))
        )
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, n_features))

    def forward(self, x, z, t):
        shape = x.shape
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = block(h, z, t)
        return self.out(h).view(shape)
