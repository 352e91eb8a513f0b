using System;
using System.IO;
using System.Text.RegularExpressions;
using NetMQ;

namespace Shm.NetMQ;

/// <summary>
/// A CURVE key pair (or a public key alone), read from and written to ZeroMQ's certificate files
/// (the <c>zcert</c> format CZMQ and <c>curve_keygen</c> users know): a text file with a
/// <c>curve</c> section holding <c>public-key = "..."</c> and, in the secret file only,
/// <c>secret-key = "..."</c>, each 40 Z85 characters.
/// </summary>
public sealed partial class CurveKey
{
    private CurveKey(NetMQCertificate certificate) => Certificate = certificate;

    internal NetMQCertificate Certificate { get; }

    /// <summary>The public key, 40 Z85 characters.</summary>
    public string PublicKey => Certificate.PublicKeyZ85;

    /// <summary>True if the secret key is known (a server's key, or a client's own).</summary>
    public bool HasSecretKey => Certificate.HasSecretKey;

    /// <summary>A new random key pair.</summary>
    public static CurveKey Generate() => new(new NetMQCertificate());

    /// <summary>A public key alone: the server's, as a client knows it.</summary>
    /// <param name="publicKey">40 Z85 characters.</param>
    /// <exception cref="ArgumentException">Not a Z85 key of 32 bytes.</exception>
    public static CurveKey FromPublicKey(string publicKey)
    {
        ArgumentNullException.ThrowIfNull(publicKey);
        try
        {
            return new(NetMQCertificate.FromPublicKey(publicKey));
        }
        catch (Exception bad) when (bad is not OutOfMemoryException)
        {
            throw new ArgumentException($"'{publicKey}' is not a CURVE public key (40 Z85 characters).", nameof(publicKey), bad);
        }
    }

    /// <summary>Reads a certificate file: the secret file gives the pair, the public one the public key alone.</summary>
    /// <param name="path">The file.</param>
    /// <exception cref="IOException">It cannot be read.</exception>
    /// <exception cref="FormatException">It holds no valid <c>public-key</c> (or a bad <c>secret-key</c>).</exception>
    public static CurveKey Load(string path)
    {
        string text = File.ReadAllText(path);
        string? publicKey = Field(text, "public-key");
        string? secretKey = Field(text, "secret-key");
        if (publicKey is null)
        {
            throw new FormatException($"{path}: no public-key = \"...\" (40 Z85 characters) in it.");
        }
        try
        {
            var key = new CurveKey(secretKey is null ? NetMQCertificate.FromPublicKey(publicKey) : new NetMQCertificate(secretKey, publicKey));
            if (secretKey is not null && NetMQCertificate.CreateFromSecretKey(secretKey).PublicKeyZ85 != publicKey)
            {
                throw new FormatException($"{path}: its public-key is not the secret-key's.");
            }
            return key;
        }
        catch (Exception bad) when (bad is not FormatException and not OutOfMemoryException)
        {
            throw new FormatException($"{path}: a key is not 40 Z85 characters.", bad);
        }
    }

    /// <summary>
    /// Writes <paramref name="path"/> (the public key, mode 0644) and <paramref name="path"/><c>_secret</c>
    /// (both keys, mode 0600, created so: never readable by others, even for an instant).
    /// </summary>
    /// <param name="path">The public file; the secret one is beside it.</param>
    /// <exception cref="InvalidOperationException">This key has no secret part.</exception>
    /// <exception cref="IOException">A file exists already or cannot be written.</exception>
    public void Save(string path)
    {
        if (!HasSecretKey)
        {
            throw new InvalidOperationException("Only a key pair with its secret key can be saved.");
        }
        Write(path + "_secret", $"    public-key = \"{PublicKey}\"\n    secret-key = \"{Certificate.SecretKeyZ85}\"\n", UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Write(path, $"    public-key = \"{PublicKey}\"\n", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
    }

    private static void Write(string path, string curve, UnixFileMode mode)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = mode };
        using var writer = new StreamWriter(path, options);
        writer.Write($"#   ZeroMQ CURVE certificate (Shm.NetMQ)\n#   {(curve.Contains("secret-key", StringComparison.Ordinal) ? "SECRET: keep private" : "public: give to peers")}\n\nmetadata\ncurve\n{curve}");
    }

    private static string? Field(string text, string name)
    {
        Match match = FieldPattern().Match(text);
        for (; match.Success; match = match.NextMatch())
        {
            if (match.Groups[1].Value == name)
            {
                return match.Groups[2].Value;
            }
        }
        return null;
    }

    [GeneratedRegex("""^\s*(public-key|secret-key)\s*=\s*"([^"]{40})"\s*$""", RegexOptions.Multiline)]
    private static partial Regex FieldPattern();
}
