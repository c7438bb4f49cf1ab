package main
import ("fmt";"os";"github.com/peerassist/edgebox/webclient/internal/bundler")
func main(){ out,_:=bundler.Build("."); a,_:=os.ReadFile("dist/peerassist.js"); b:=out["peerassist.js"]; for i:=range a { if a[i]!=b[i] { fmt.Printf("%d %q %q\n", i, a[max(0,i-40):i+40], b[max(0,i-40):i+40]); break } } }
