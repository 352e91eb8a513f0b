namespace Shm.Tool;

/// <summary>Exit codes as ls and rm have them.</summary>
internal static class Exit
{
    public const int Done = 0;
    public const int Failed = 1;
    public const int Usage = 2;
}
